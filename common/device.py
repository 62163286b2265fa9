"""Choosing the device and seeding every random number generator."""
from __future__ import annotations

import functools
import os
import random

import torch

from common.errors import LadderError


def pick_device(requested: str | None = None) -> torch.device:
    """The requested device, checked; or the best available: CUDA, then Apple MPS, then CPU."""
    mps = getattr(torch.backends, "mps", None)
    mps_ok = mps is not None and mps.is_available()
    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise LadderError(f"unknown device {requested!r}: use cpu, cuda, cuda:N, mps or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise LadderError(f"device {requested!r} asked for, but CUDA is not available here: use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise LadderError(f"device {requested!r} does not exist: this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not mps_ok:
        raise LadderError(f"device {requested!r} asked for, but Apple MPS is not available here: use --device cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise LadderError(f"unsupported device {requested!r}: use cpu, cuda, mps or auto")
    return device


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's (when installed) and PyTorch's generators on every device."""
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS
    try:
        import numpy as np
        np.random.seed(seed % 2**32)
    except ImportError:
        pass


@functools.lru_cache(maxsize=None)
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:  # not Linux: assume no
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@functools.lru_cache(maxsize=None)  # asked every training step: answer once per device
def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The dtype to autocast matmuls to (None: plain fp32) for a TrainConfig.precision on a device.

    'auto' picks bf16 where the hardware does it natively (CUDA with bf16 support, a CPU with
    AVX512-BF16 or AMX) and fp32 elsewhere: emulated bf16 is slower, not faster. Weights, the
    optimizer and the loss stay fp32 (mixed precision).
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    return None


def device_name(device: torch.device) -> str:
    """A name for the results: the GPU's model, Apple MPS, or the CPU with its core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU, {os.cpu_count()} cores"
