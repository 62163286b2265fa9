"""Peak memory of a run: the process's resident set on the CPU, allocated memory on CUDA."""
from __future__ import annotations

import torch


def _status_kb(field: str) -> int | None:
    """A memory field of /proc/self/status (e.g. VmRSS, VmHWM) in kB; None where there is none."""
    try:
        with open("/proc/self/status") as f:
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
            if hwm is None:
                import resource  # Linux reports kB, macOS bytes; /proc exists only on Linux anyway
                hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            peak = hwm * 1024
        delta = (peak - self.start) / 2**20 if (self.device.type == "cuda" or self.reset) else None
        return peak / 2**20, delta
