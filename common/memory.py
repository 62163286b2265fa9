"""Memory: what a configuration will need (checked before training) and the peak a run used."""
from __future__ import annotations

import os

import torch

from common.errors import LadderError

FLOAT = 4  # bytes


def estimate_training_bytes(model_config, batch_size: int) -> int:
    """A rough upper estimate of a training step's memory, from a stage's config alone (no model is built:
    at a huge block_size building one would already allocate the T x T causal masks).

    Weights, gradients and AdamW's two moments (4 copies of ~12 n_layer n_embd^2 + embeddings), the T x T
    mask buffers, the B x heads x T x T attention maps (scores, softmax, dropout, kept for backward) and
    ~30 B x T x n_embd activations per layer, and the logits.
    """
    V, T = model_config.vocab_size, model_config.block_size
    C = getattr(model_config, "n_embd", V)
    H = getattr(model_config, "n_head", 1)
    L = getattr(model_config, "n_layer", 1)
    B = batch_size
    params = 12 * L * C * C + (V + T) * C + V * C
    weights = 4 * params * FLOAT
    masks = (L + 1) * T * T * FLOAT if hasattr(model_config, "n_embd") else 0
    attention = 4 * L * B * H * T * T * FLOAT if hasattr(model_config, "n_embd") else 0
    activations = 30 * L * B * T * C * FLOAT + 3 * B * T * V * FLOAT
    return weights + masks + attention + activations


def available_bytes(device) -> int | None:
    """Memory free for a new run: the device's free memory on CUDA, the system's available memory on the CPU."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    available = _meminfo_kb("MemAvailable")
    if available is not None:
        return available * 1024
    try:  # no /proc (macOS): the physical memory
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(model_config, batch_size: int, device, stage: str, runs_at_once: int = 1) -> None:
    """Refuse, with what it needs, a configuration that cannot fit in memory (before anything is built)."""
    need = estimate_training_bytes(model_config, batch_size) * runs_at_once
    have = available_bytes(device)
    if have is not None and need > have:
        at_once = f" ({runs_at_once} runs at a time)" if runs_at_once > 1 else ""
        raise LadderError(f"stage {stage} needs about {need / 2**30:.1f} GiB to train{at_once} (block_size "
                          f"{model_config.block_size}, batch {batch_size}), more than the {have / 2**30:.1f} GiB "
                          f"available on {device.type}: lower block_size, batch_size or n_embd with --set"
                          + (", or use fewer --jobs" if runs_at_once > 1 else ""))


def _meminfo_kb(field: str) -> int | None:
    """A field of /proc/meminfo (e.g. MemAvailable) in kB; None where there is none."""
    return _proc_kb("/proc/meminfo", field)


def _status_kb(field: str) -> int | None:
    """A memory field of /proc/self/status (e.g. VmRSS, VmHWM) in kB; None where there is none."""
    return _proc_kb("/proc/self/status", field)


def _proc_kb(path: str, field: str) -> int | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class MemoryMeter:
    """Peak memory from now on: the process's resident set on the CPU, allocated memory on CUDA."""

    def __init__(self, device):
        self.device = device
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            self.start = torch.cuda.memory_allocated(device)
        else:
            try:  # "5" resets the peak resident set size (VmHWM) to the current one (Linux >= 4.0)
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
                self.reset = True
            except OSError:
                self.reset = False  # the peak then includes everything since the process began
            self.start = (_status_kb("VmRSS") or 0) * 1024

    def read(self) -> tuple[float | None, float | None]:
        """(peak MB, peak minus the level at the start, MB); None where unknown."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            hwm = _status_kb("VmHWM")
            if hwm is not None:
                peak = hwm * 1024
            else:  # no /proc (macOS): ru_maxrss is in bytes on macOS, in kB elsewhere
                import resource
                import sys
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
        delta = (peak - self.start) / 2**20 if (self.device.type == "cuda" or self.reset) else None
        return peak / 2**20, delta
