"""One training loop and one evaluation for every stage.

AdamW, optional warm-up and cosine decay, periodic evaluation of both splits (eval mode, no
gradients, `eval_iters` batches each), the loss curve, and a state that can be saved and resumed.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from common.config import TrainConfig
from common.data import Dataset, get_batch
from common.device import autocast_dtype
from common.distributed import SINGLE, World
from common.errors import LadderError

EVAL_SEED_OFFSET = 10_007  # evaluation batches come from their own generator, the same at every evaluation


@torch.no_grad()
def estimate_loss(model: torch.nn.Module, dataset: Dataset, block_size: int, batch_size: int,
                  eval_iters: int, seed: int = 0, precision: str = "fp32") -> dict[str, float]:
    """Mean loss over eval_iters random batches of each split, in eval mode, without gradients.

    The batches are drawn from a generator seeded afresh each call, so every evaluation of a run
    (and every stage trained with the same seed and shapes) is scored on the same windows.
    """
    if precision == "auto":  # the measured choice for this machine and model size (cached)
        from common.precision import resolve_precision
        precision = resolve_precision("auto", dataset.train.device, model, batch_size)
    was_training = model.training
    model.eval()
    out = {}
    dtype = autocast_dtype(dataset.train.device, precision)
    for split in ("train", "val"):
        data = dataset.split(split)
        generator = torch.Generator(device=data.device).manual_seed(seed + EVAL_SEED_OFFSET)
        losses = torch.zeros(eval_iters, device=data.device)
        for k in range(eval_iters):
            x, y = get_batch(data, block_size, batch_size, generator)
            with torch.autocast(data.device.type, dtype=dtype, enabled=dtype is not None):
                _, loss = model(x, y)
            losses[k] = loss.float()
        out[split] = losses.mean().item()
    model.train(was_training)
    return out


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up for warmup_iters steps, then constant or (lr_decay) cosine down to min_lr_ratio."""
    if step < cfg.warmup_iters:
        return cfg.learning_rate * (step + 1) / cfg.warmup_iters
    if not cfg.lr_decay:
        return cfg.learning_rate
    progress = (step - cfg.warmup_iters) / max(1, cfg.max_iters - cfg.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))  # 1 -> 0
    return cfg.learning_rate * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * coeff)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; on CUDA and CPU its fused kernel (one pass over all parameters, not several per tensor)."""
    device_type = next(model.parameters()).device.type
    return torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                             fused=True if device_type in ("cuda", "cpu") else None)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, data: torch.Tensor, cfg: TrainConfig,
               step: int, generator: torch.Generator, rows: slice | None = None) -> torch.Tensor:
    """One optimisation step on a random batch of `data`; returns the loss (not synchronised).

    Under DDP, `model` is the DistributedDataParallel wrapper and `rows` this rank's share of the
    global batch (see common/distributed.py).
    """
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(step, cfg)
    block_size = getattr(model, "module", model).config.block_size
    x, y = get_batch(data, block_size, cfg.batch_size, generator)  # (B, T), (B, T): the global batch
    if rows is not None:
        x, y = x[rows], y[rows]  # (B / world_size, T): this rank's rows
    dtype = autocast_dtype(data.device, cfg.precision)  # bf16 matmuls when chosen (see common/precision.py)
    with torch.autocast(data.device.type, dtype=dtype, enabled=dtype is not None):
        _, loss = model(x, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    return loss


@dataclass
class TrainState:
    """Everything needed to continue a run exactly where it stopped."""

    step: int = 0  # optimisation steps done
    curve: list[dict[str, float]] = field(default_factory=list)  # one row per evaluation
    optimizer: dict[str, Any] | None = None  # optimizer.state_dict()
    batch_rng: torch.Tensor | None = None  # state of the training-batch generator
    torch_rng: torch.Tensor | None = None  # global CPU generator (dropout on CPU)
    cuda_rng: torch.Tensor | None = None  # global CUDA generator (dropout on CUDA)
    elapsed: float = 0.0  # training seconds before this session


@dataclass
class TrainResult:
    model: torch.nn.Module
    state: TrainState
    wall_seconds: float  # seconds of this call, evaluations included
    tokens_per_second: float  # training tokens processed per second of this call
    stopped: bool = False  # True when should_stop() ended the run before max_iters

    @property
    def final(self) -> dict[str, float]:
        return self.state.curve[-1]

    @property
    def best_val(self) -> dict[str, float]:
        return min(self.state.curve, key=lambda row: row["val_loss"])


def restore(state: TrainState, optimizer: torch.optim.Optimizer, batch_gen: torch.Generator,
            device: torch.device) -> None:
    """Put a saved state's optimizer and random generators back, so a resumed run goes on exactly."""
    if state.optimizer is not None:
        optimizer.load_state_dict(state.optimizer)
    if state.batch_rng is not None:
        batch_gen.set_state(state.batch_rng)
    if state.torch_rng is not None:
        torch.set_rng_state(state.torch_rng)
    if state.cuda_rng is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state.cuda_rng, device)


def train(model: torch.nn.Module, dataset: Dataset, cfg: TrainConfig, seed: int = 0,
          state: TrainState | None = None, name: str = "model", progress: bool = True,
          on_eval: Callable[[TrainState, torch.nn.Module, torch.optim.Optimizer], None] | None = None,
          should_stop: Callable[[], bool] | None = None, world: World = SINGLE) -> TrainResult:
    """Train model on dataset (already on the model's device) for cfg.max_iters steps.

    Evaluates at step 0, every eval_interval steps and at the end; calls on_eval(state, model,
    optimizer) after each evaluation (e.g. to write a checkpoint). Pass a saved `state` to resume.
    If should_stop() becomes true (e.g. after Ctrl-C), stops at the end of the current step and
    returns with `stopped` set and the state captured at that step, ready to save and resume.
    With a `world` of several ranks (torchrun), trains one DDP replica per rank on its share of
    each global batch; every rank stops at the same step (see common/distributed.py).
    """
    from tqdm import tqdm

    from common.precision import resolve_precision

    device = dataset.train.device
    if cfg.precision == "auto":  # measured once per machine and model size, then cached
        cfg = dataclasses.replace(cfg, precision=resolve_precision("auto", device, model, cfg.batch_size))
    block_size = model.config.block_size
    if device.type == "cuda":  # TF32 tensor cores for the fp32 matmuls autocast leaves
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    optimizer = make_optimizer(model, cfg)
    batch_gen = torch.Generator(device=device).manual_seed(seed)
    state = state or TrainState()
    restore(state, optimizer, batch_gen, device)
    stepper, rows = model, None
    if world.active:  # one replica per rank; dropout masks from the rank's own generator
        from torch.nn.parallel import DistributedDataParallel
        stepper = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        rows = world.shard(cfg.batch_size)
        torch.manual_seed(seed + 1_000_003 * (world.rank + 1) + state.step)

    def capture(step: int, elapsed: float) -> None:
        state.step = step
        state.optimizer = optimizer.state_dict()
        state.batch_rng = batch_gen.get_state()
        state.torch_rng = torch.get_rng_state()
        state.cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        state.elapsed = elapsed

    def evaluate(step: int, elapsed: float) -> None:
        losses = estimate_loss(model, dataset, block_size, cfg.batch_size, cfg.eval_iters, seed, cfg.precision)
        bad = {split: v for split, v in losses.items() if not math.isfinite(v)}
        if bad:
            split, value = next(iter(bad.items()))
            raise LadderError(f"{name}: the {split} loss became {value} at step {step}; the learning rate "
                              f"({cfg.learning_rate}) is probably too high for this model: lower it with --set learning_rate=...")
        state.curve.append({"step": step, "train_loss": losses["train"], "val_loss": losses["val"],
                            "seconds": round(elapsed, 3)})
        capture(step, elapsed)
        if on_eval is not None:
            on_eval(state, model, optimizer)

    model.train()
    start = time.perf_counter()
    base_elapsed = state.elapsed
    start_step = state.step
    if not state.curve:
        evaluate(0, 0.0)
    bar = tqdm(total=cfg.max_iters, initial=start_step, desc=name, disable=not progress,
               dynamic_ncols=True, leave=False, unit="step")
    for step in range(start_step, cfg.max_iters):
        train_step(stepper, optimizer, dataset.train, cfg, step, batch_gen, rows)
        bar.update(1)
        done = step + 1
        if done % cfg.eval_interval == 0 or done == cfg.max_iters:
            evaluate(done, base_elapsed + time.perf_counter() - start)
            last = state.curve[-1]
            bar.set_postfix(train=f"{last['train_loss']:.3f}", val=f"{last['val_loss']:.3f}")
        if should_stop is not None and world.any(should_stop()) and done < cfg.max_iters:
            capture(done, base_elapsed + time.perf_counter() - start)
            break
    bar.close()
    wall = time.perf_counter() - start
    tokens = (state.step - start_step) * cfg.batch_size * block_size
    return TrainResult(model, state, wall, tokens / wall if wall > 0 else 0.0, stopped=state.step < cfg.max_iters)
