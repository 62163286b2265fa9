"""One training loop and one evaluation for every stage.

AdamW, optional warm-up and cosine decay, periodic evaluation of both splits (eval mode, no
gradients, `eval_iters` batches each), the loss curve, and a state that can be saved and resumed.
The last evaluation scores the whole validation split rather than a sample of it: the random
sample's own noise (a standard deviation of about 0.008 nats at 50 batches of 32 x 32 characters)
was as large as the differences between seeds that the ladder's verdicts test.
A loss that becomes NaN or infinite ends the run there, as diverged: a result, not an error.
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

EVAL_SEED_OFFSET = 10_007  # evaluation batches come from their own generator, the same at every evaluation


@torch.no_grad()
def estimate_loss(model: torch.nn.Module, dataset: Dataset, block_size: int, batch_size: int,
                  eval_iters: int, seed: int = 0, precision: str = "fp32",
                  splits: tuple[str, ...] = ("train", "val")) -> dict[str, float]:
    """Mean loss over eval_iters random batches of each of `splits`, in eval mode, without gradients.

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
    try:
        for split in splits:
            data = dataset.split(split)
            generator = torch.Generator(device=data.device).manual_seed(seed + EVAL_SEED_OFFSET)
            losses = torch.zeros(eval_iters, device=data.device)
            for k in range(eval_iters):
                x, y = get_batch(data, block_size, batch_size, generator)
                with torch.autocast(data.device.type, dtype=dtype, enabled=dtype is not None):
                    _, loss = model(x, y)
                losses[k] = loss.float()
            out[split] = losses.mean().item()
    finally:  # back in training mode even when an evaluation is interrupted (Ctrl-C, out of memory)
        model.train(was_training)
    return out


@torch.no_grad()
def split_loss(model: torch.nn.Module, data: torch.Tensor, block_size: int, batch_size: int,
               precision: str = "fp32") -> float:
    """Mean loss over every character of `data` that a full window predicts: the split cut into
    non-overlapping windows of block_size + 1 characters' worth (inputs and shifted targets), batch_size
    windows at a time, in eval mode. Deterministic: the same model scores the same on any run."""
    if precision == "auto":  # the measured choice for this machine and model size (cached)
        from common.precision import resolve_precision
        precision = resolve_precision("auto", data.device, model, batch_size)
    was_training = model.training
    model.eval()
    n = (len(data) - 1) // block_size  # full windows; the last partial one (under block_size characters) is left out
    x = data[: n * block_size].view(n, block_size)  # (n, T)
    y = data[1: n * block_size + 1].view(n, block_size)  # (n, T): x shifted left by one
    dtype = autocast_dtype(data.device, precision)
    total = torch.zeros((), device=data.device, dtype=torch.float64)
    try:
        for i in range(0, n, batch_size):
            with torch.autocast(data.device.type, dtype=dtype, enabled=dtype is not None):
                _, loss = model(x[i: i + batch_size], y[i: i + batch_size])
            total += loss.double() * len(x[i: i + batch_size])  # loss is the batch's mean: weight it by its windows
    finally:
        model.train(was_training)
    return (total / n).item()


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
    """The model's own optimizer when its recipe has one (`model.make_optimizer(cfg, adamw)`, e.g. Muon for
    some parameters and this AdamW for the rest), else AdamW for every parameter; AdamW on CUDA and CPU
    with its fused kernel (one pass over all parameters, not several per tensor)."""
    device_type = next(model.parameters()).device.type

    def adamw(params) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                                 fused=True if device_type in ("cuda", "cpu") else None)

    own = getattr(model, "make_optimizer", None)
    return own(cfg, adamw) if own is not None else adamw(model.parameters())


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
    device_rng: torch.Tensor | None = None  # the accelerator's global generator (dropout on CUDA or MPS)
    elapsed: float = 0.0  # training seconds before this session


@dataclass
class TrainResult:
    model: torch.nn.Module
    state: TrainState
    wall_seconds: float  # seconds of this call, evaluations included
    tokens_per_second: float  # training tokens processed per second of this call
    stopped: bool = False  # True when should_stop() ended the run before max_iters
    diverged: bool = False  # True when a loss became NaN or infinite: the run ended at that evaluation

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
    if state.device_rng is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state.device_rng, device)
    elif state.device_rng is not None and device.type == "mps":
        torch.mps.set_rng_state(state.device_rng)


def device_rng_state(device: torch.device) -> torch.Tensor | None:
    """The global generator state of the accelerator that draws the dropout masks (None on the CPU, whose
    generator is `torch_rng`)."""
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    if device.type == "mps":
        return torch.mps.get_rng_state()
    return None


def replica(model: torch.nn.Module, cfg: TrainConfig, world: World):
    """(what steps, this rank's rows of each batch): the model itself, or under torchrun its DDP replica."""
    if not world.active:
        return model, None
    from torch.nn.parallel import DistributedDataParallel
    device = next(model.parameters()).device
    stepper = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return stepper, world.shard(cfg.batch_size)


def seed_rank_step(seed: int, world: World, step: int) -> None:
    """Under torchrun, seed this rank's dropout masks for one step from (seed, rank, step) alone: every rank
    draws its own masks, and a resumed run draws the same ones as a run never stopped (only rank 0's
    generators are saved)."""
    if world.active:
        torch.manual_seed(seed + 1_000_003 * (world.rank + 1) + step)


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
    dataset = dataset.with_train_chars(cfg.train_chars)  # training (and its train loss) on the first characters only
    if cfg.precision == "auto":  # measured once per machine and model size, then cached
        cfg = dataclasses.replace(cfg, precision=resolve_precision("auto", device, model, cfg.batch_size))
    block_size = model.config.block_size
    optimizer = make_optimizer(model, cfg)
    batch_gen = torch.Generator(device=device).manual_seed(seed)
    state = state or TrainState()
    restore(state, optimizer, batch_gen, device)
    stepper, rows = replica(model, cfg, world)

    def capture(step: int, elapsed: float) -> None:
        state.step = step
        state.optimizer = optimizer.state_dict()
        state.batch_rng = batch_gen.get_state()
        state.torch_rng = torch.get_rng_state()
        state.device_rng = device_rng_state(device)
        state.elapsed = elapsed

    def evaluate(step: int, elapsed: float) -> bool:
        """Evaluate, record and report; False when a loss is no longer finite (the run has diverged)."""
        last = step == cfg.max_iters
        losses = estimate_loss(model, dataset, block_size, cfg.batch_size, cfg.eval_iters, seed, cfg.precision,
                               splits=("train",) if last else ("train", "val"))
        if last:  # the result: the whole validation split, no sampling noise
            losses["val"] = split_loss(model, dataset.val, block_size, cfg.batch_size, cfg.precision)
        state.curve.append({"step": step, "train_loss": losses["train"], "val_loss": losses["val"],
                            "seconds": round(elapsed, 3)})
        capture(step, elapsed)
        if not all(math.isfinite(v) for v in losses.values()):
            return False  # no checkpoint of weights that are no longer numbers
        if on_eval is not None:
            on_eval(state, model, optimizer)
        return True

    model.train()
    start = time.perf_counter()
    base_elapsed = state.elapsed
    start_step = state.step
    finite = evaluate(0, 0.0) if not state.curve else True
    # disable=None: the bar only on a terminal, so a log file gets no redraws
    bar = tqdm(total=cfg.max_iters, initial=start_step, desc=name, disable=None if progress else True,
               dynamic_ncols=True, leave=False, unit="step")
    for step in range(start_step, cfg.max_iters if finite else start_step):
        seed_rank_step(seed, world, step)
        train_step(stepper, optimizer, dataset.train, cfg, step, batch_gen, rows)
        bar.update(1)
        done = step + 1
        if done % cfg.eval_interval == 0 or done == cfg.max_iters:
            finite = evaluate(done, base_elapsed + time.perf_counter() - start)
            last = state.curve[-1]
            bar.set_postfix(train=f"{last['train_loss']:.3f}", val=f"{last['val_loss']:.3f}")
            if not finite:
                break
        if should_stop is not None and world.any(should_stop()) and done < cfg.max_iters:
            capture(done, base_elapsed + time.perf_counter() - start)
            break
    bar.close()
    wall = time.perf_counter() - start
    tokens = (state.step - start_step) * cfg.batch_size * block_size
    return TrainResult(model, state, wall, tokens / wall if wall > 0 else 0.0,
                       stopped=finite and state.step < cfg.max_iters, diverged=not finite)
