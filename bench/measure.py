"""Measuring one row, in whatever process runs it: a stage's training step timed, with its FLOPs and peak
memory; and the time the `scaled` stage takes to reach a target validation loss. Each task is a plain
dict and each result a plain dict (see the top of bench/bench.py for how each number is measured)."""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

from bench.machine import sync
from bench.plan import REFERENCE, REFERENCES, split_row

_DATASET_CACHE: dict[Any, Any] = {}


def _dataset(path: str | None):
    """The corpus, loaded once per process (with --inline several rows share one process)."""
    from common.data import load_dataset

    if path not in _DATASET_CACHE:
        _DATASET_CACHE[path] = load_dataset(path)
    return _DATASET_CACHE[path]


def build_model(stage: str, settings: dict[str, Any], vocab_size: int, device: str = "cpu"):
    """(model, model config, TrainConfig) of a stage (or the reference) under `settings`."""
    from common.profiles import make_configs
    from stages import STAGES

    if stage in REFERENCES:
        if stage == REFERENCE:
            from bench.reference import Model
        else:
            from bench.nanogpt_shaped import Model
        config_cls = STAGES["scaled"].Config  # same fields: vocab, block, n_embd, n_head, n_layer, dropout
    else:
        Model, config_cls = STAGES[stage].Model, STAGES[stage].Config
    import torch

    from common.precision import resolve_precision
    model_config, train_config = make_configs(config_cls, settings, vocab_size)
    model = Model(model_config)
    if train_config.precision == "auto":  # what the runner would choose here (measured once, cached)
        with torch.random.fork_rng(devices=[]):
            precision = resolve_precision("auto", torch.device(device), model, train_config.batch_size)
        train_config = dataclasses.replace(train_config, precision=precision)
    return model, model_config, train_config


def training_flops_per_token(model, block_size: int) -> tuple[int, float]:
    """(N, training FLOPs per token): 6 N + the attention terms; see the module docstring."""
    import torch.nn as nn

    outputs = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}  # a tied table multiplies too
    embeddings = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()} - outputs
    n = sum(p.numel() for p in model.parameters() if id(p) not in embeddings)
    flops = 6.0 * n
    for m in model.modules():
        key = getattr(m, "key", None)
        if isinstance(key, nn.Linear) and isinstance(getattr(m, "query", None), nn.Linear):
            flops += 12.0 * block_size * key.out_features  # attention: QK^T and AV, fwd + bwd
        elif isinstance(getattr(m, "qkv", None), nn.Linear):
            flops += 12.0 * block_size * m.qkv.out_features // 3  # the same, for the fused projection
        elif type(m).__name__ == "CausalAverage":
            flops += 4.0 * block_size * model.config.n_embd  # wei @ x, forward and grad of x
    return n, flops


def measure_steps(task: dict[str, Any]) -> dict[str, Any]:
    """Time training steps of one stage at one setting; FLOPs and peak memory with them."""
    import torch

    from common.memory import MemoryMeter
    from common.train import make_optimizer, train_step

    device = torch.device(task["device"])
    dataset = _dataset(task["data"]).to(device)
    meter = MemoryMeter(device)
    torch.manual_seed(task["seed"])
    model, config, train_config = build_model(split_row(task["stage"])[0], task["settings"],
                                              dataset.tokenizer.vocab_size, task["device"])
    model.to(device).train()
    optimizer = make_optimizer(model, train_config)
    generator = torch.Generator(device=device).manual_seed(task["seed"])
    block_size = config.block_size
    warmup, steps = task["warmup"], task["steps"]

    def step(i: int):
        return train_step(model, optimizer, dataset.train, train_config, i, generator)

    for i in range(warmup):
        step(i)
    times = []
    if device.type == "cuda":  # back to back, one synchronisation at each end: the mean
        sync(device)
        t0 = time.perf_counter()
        for i in range(warmup, warmup + steps):
            loss = step(i)
        sync(device)
        ms = (time.perf_counter() - t0) / steps * 1000
    else:  # each step on its own: the median
        for i in range(warmup, warmup + steps):
            t0 = time.perf_counter()
            loss = step(i)
            times.append((time.perf_counter() - t0) * 1000)
        ms = statistics.median(times)
    peak_mb, delta_mb = meter.read()
    n_matmul, flops_per_token = training_flops_per_token(model, block_size)
    tokens = train_config.batch_size * block_size
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "matmul_params": n_matmul,
        "batch_size": train_config.batch_size,
        "block_size": block_size,
        "max_iters": train_config.max_iters,
        "precision": train_config.precision,
        "pinned": task["settings"].get("precision", "auto") != "auto",
        "ms": ms,
        "ms_min": min(times) if times else None,
        "tokens_per_step": tokens,
        "flops_per_step": flops_per_token * tokens,
        "peak_mb": peak_mb,
        "delta_mb": delta_mb,
        "loss": float(loss.item()),
    }


def measure_training(task: dict[str, Any]) -> dict[str, Any]:
    """Train `scaled` with common.train.train; wall seconds until val <= target (evaluations included).

    With target None (or stop_at_target False) it trains to max_iters and reports the whole run.
    """
    import torch

    from common.device import set_seed
    from common.train import train

    device = torch.device(task["device"])
    dataset = _dataset(task["data"]).to(device)
    set_seed(task["seed"])
    model, config, train_config = build_model("scaled", task["settings"], dataset.tokenizer.vocab_size,
                                              task["device"])
    model.to(device)
    target, stop_at_target = task.get("target"), task.get("stop_at_target", True)
    reached: dict[str, Any] = {}
    start = time.perf_counter()

    def on_eval(state, model, optimizer) -> None:
        row = state.curve[-1]
        if target is not None and not reached and row["val_loss"] <= target:
            reached.update(step=row["step"], seconds=time.perf_counter() - start, val_loss=row["val_loss"])

    def should_stop() -> bool:  # train() asks after each step that is not an evaluation step
        return bool(reached) and stop_at_target

    result = train(model, dataset, train_config, seed=task["seed"], name="time-to-quality", progress=False,
                   on_eval=on_eval, should_stop=should_stop)
    wall = time.perf_counter() - start
    best = result.best_val
    return {
        "target": target,
        "reached": bool(reached),
        "seconds": reached.get("seconds"),
        "step": reached.get("step"),
        "val_loss": reached.get("val_loss"),
        "best_val": best["val_loss"],
        "best_step": best["step"],
        "final_val": result.final["val_loss"],
        "steps_run": result.state.step,
        "wall": wall,
        "max_iters": train_config.max_iters,
        "eval_interval": train_config.eval_interval,
        "eval_iters": train_config.eval_iters,
        "curve": [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
                  for row in result.state.curve],
    }
