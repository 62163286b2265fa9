"""`precision = "auto"` decided by measurement, not by CPU flags.

A CPU flag says bf16 instructions exist, not that they are fast: on one 2-core Xeon with
AVX512-BF16 and no AMX a bf16 matmul ran at 0.6x fp32, on an AMD EPYC at 2x (issue 12). So on the
CPU, the first run of a shape class on a machine times forward + backward passes of the run's own
model at its own batch in fp32 and in bf16 autocast, in pairs, and takes bf16 only when the median
pair says it is at least 1.1x faster.
The choice is cached per machine and shape class outside the repository
(`$GPT_LADDER_CACHE`, default `~/.cache/gpt-ladder/precision.json`) and printed once.
On CUDA, bf16 where the GPU computes it natively (compute capability 8.0 and up: A100, H100; not the
emulated bf16 of a T4 or V100); elsewhere (MPS) fp32.

A run's numbers depend on its precision: its run.json records the resolved one. Its reuse key holds the one
asked for, so a run made with "auto" is the same experiment whichever precision a machine chose, and a
resumed run goes on in the precision it started in (common/run.py, start_model).
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Callable

import torch

CACHE_ENV = "GPT_LADDER_CACHE"
PROBE_SECONDS = 1.5  # the whole probe: both precisions, alternating
BF16_MARGIN = 1.1  # bf16 only when clearly faster: near a tie, fp32 (the exact computation) wins


def cache_path() -> Path:
    folder = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gpt-ladder"
    return Path(folder) / "precision.json"


def machine_id() -> str:
    """The CPU model, core count, thread count and PyTorch version: what decides the answer."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model} | {os.cpu_count()} cores | {torch.get_num_threads()} threads | torch {torch.__version__}"


def shape_class(model: torch.nn.Module, batch_size: int) -> str:
    """Runs whose sizes round to the same powers of two share a choice."""
    config = model.config
    sizes = dict(params=sum(p.numel() for p in model.parameters()), tokens=batch_size * config.block_size,
                 block=config.block_size)
    return ",".join(f"{k}~2^{round(math.log2(max(v, 1)))}" for k, v in sizes.items())


def _read_cache() -> dict:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(data: dict) -> None:
    from common.io import write_json
    try:
        cache_path().parent.mkdir(parents=True, exist_ok=True)
        write_json(cache_path(), data)
    except OSError:  # a read-only home: measure again next time
        pass


def time_step(model: torch.nn.Module, batch_size: int, dtype: torch.dtype | None) -> float:
    """Seconds of one forward + backward pass at the run's shapes (random tokens), in autocast `dtype`."""
    config = model.config
    idx = torch.randint(config.vocab_size, (batch_size, config.block_size), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        _, loss = model(idx, idx)
    loss.backward()
    return time.perf_counter() - start


def probe(model: torch.nn.Module, batch_size: int, timer: Callable = time_step) -> float:
    """How many times faster bf16 autocast runs than fp32 here: the median, over at least 7 pairs of steps
    timed back to back (about PROBE_SECONDS in all), of each pair's fp32 time over its bf16 time.

    Pairs, not two separate medians: a burst of other work on the machine then slows both sides of a
    pair alike, instead of one precision's samples."""
    dtypes = {"fp32": None, "bf16": torch.bfloat16}
    for dtype in dtypes.values():  # warm-up: first calls allocate and pick kernels
        timer(model, batch_size, dtype)
    ratios: list[float] = []
    deadline = time.perf_counter() + PROBE_SECONDS
    while (time.perf_counter() < deadline or len(ratios) < 7) and len(ratios) < 50:
        fp32 = timer(model, batch_size, None)
        ratios.append(fp32 / max(timer(model, batch_size, torch.bfloat16), 1e-9))
    model.zero_grad(set_to_none=True)
    return sorted(ratios)[len(ratios) // 2]


def resolve_precision(requested: str, device: torch.device, model: torch.nn.Module | None, batch_size: int,
                      timer: Callable = time_step) -> str:
    """'fp32' or 'bf16': the requested one, or for 'auto' the faster one here (see the module docstring)."""
    if requested != "auto":
        return requested
    if device.type == "cuda":  # not torch.cuda.is_bf16_supported(): it also says yes where bf16 is emulated
        return "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp32"
    if device.type != "cpu" or not hasattr(getattr(model, "config", None), "vocab_size"):  # nothing to measure: fp32
        return "fp32"
    key = f"{machine_id()} | {shape_class(model, batch_size)}"
    cache = _read_cache()
    if isinstance(cache.get(key), dict) and cache[key].get("choice") in ("fp32", "bf16"):
        return cache[key]["choice"]
    with torch.random.fork_rng(devices=[]):  # dropout in the probe must not move the run's random numbers
        speedup = probe(model, batch_size, timer)
    choice = "bf16" if speedup >= BF16_MARGIN else "fp32"
    cache = _read_cache()
    if isinstance(cache.get(key), dict) and cache[key].get("choice") in ("fp32", "bf16"):
        return cache[key]["choice"]  # a parallel run measured first: one answer per machine and size
    cache[key] = {"choice": choice, "bf16_speedup": round(speedup, 3), "measured": time.strftime("%Y-%m-%d")}
    _write_cache(cache)
    what = (f"bf16 autocast: {speedup:.2f}x faster than fp32 here" if choice == "bf16" else
            f"fp32: bf16 autocast runs at {speedup:.2f}x the speed of fp32 here")
    print(f"precision auto -> {what} (measured once for this machine and model size; cached in {cache_path()})",
          flush=True)
    return choice
