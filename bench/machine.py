"""The machine the benchmark runs on: what it is (the CPU and its bf16 hardware, the cores, the threads) and
how fast it multiplies matrices (the matmul ceiling the % column is against)."""
from __future__ import annotations

import datetime
import math
import os
import platform
import time
from typing import Any


def cpu_info() -> dict[str, Any]:
    """The CPU's model name and its bf16 matmul hardware (AMX, AVX512-BF16), from /proc/cpuinfo (Linux)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.processor(), platform.machine()):
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {"cpu": model, "amx_bf16": "amx_bf16" in flags, "avx512_bf16": "avx512_bf16" in flags}


def default_threads() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_description(info: dict[str, Any], device: str, threads: int) -> dict[str, Any]:
    """The report's machine line, as known before any task ran (torch's version comes from the ceiling task)."""
    return {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "device": device,
            "cpu": info["cpu"], "cores": os.cpu_count(), "amx_bf16": info["amx_bf16"],
            "avx512_bf16": info["avx512_bf16"], "threads": threads,
            "python": platform.python_version()}


def measure_ceiling(task: dict[str, Any]) -> dict[str, Any]:
    """Best GFLOP/s of n x n matmuls per dtype, and what this process sees of the machine."""
    import torch

    device = torch.device(task["device"])
    n, repeats = task["n"], task["repeats"]
    dtypes = {"fp32": torch.float32}
    if device.type == "cuda":
        dtypes.update(tf32=torch.float32, bf16=torch.bfloat16)
    elif task.get("bf16"):  # AMX or AVX512-BF16: the CPU multiplies bf16 natively
        dtypes["bf16"] = torch.bfloat16
    if task.get("dtypes"):  # only these (e.g. ["bf16"]: a GPU's bf16 peak, without the slower fp32 products)
        dtypes = {name: dtypes[name] for name in task["dtypes"] if name in dtypes}
    out: dict[str, Any] = {"gflops": {}}
    for name, dtype in dtypes.items():
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = name == "tf32"
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        torch.mm(a, b)  # warm-up: library initialisation, thread pool start
        best = math.inf
        for _ in range(repeats):
            sync(device)
            t0 = time.perf_counter()
            inner = 10 if device.type == "cuda" else 1  # a GPU matmul is too short to time alone
            for _ in range(inner):
                torch.mm(a, b)
            sync(device)
            best = min(best, (time.perf_counter() - t0) / inner)
        out["gflops"][name] = 2 * n**3 / best / 1e9
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # PyTorch's default
        out["device_name"] = torch.cuda.get_device_name(device)
    out["torch"] = torch.__version__
    out["threads"] = torch.get_num_threads()
    return out


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
