"""Choosing the device and seeding every random number generator."""
from __future__ import annotations

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


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The dtype to autocast matmuls to (None: plain fp32) for a resolved precision, "fp32" or "bf16".

    "auto" is resolved by measurement first (common/precision.py). Weights, the optimizer and the
    loss stay fp32 (mixed precision).
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    raise ValueError(f"precision {precision!r} must be resolved to fp32 or bf16 first (common.precision)")


def device_name(device: torch.device) -> str:
    """A name for the results: the GPU's model, Apple MPS, or the CPU with its core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU, {os.cpu_count()} cores"
