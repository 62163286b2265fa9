#!/usr/bin/env python3
"""GPT Ladder's benchmark: speed, efficiency and memory of every stage, and time to quality.

    python bench/bench.py                       # the full CPU benchmark (a few minutes)
    python bench/bench.py --device cuda         # the GPU benchmark
    python bench/bench.py --quick               # a tiny version that runs in seconds (for tests)
    python bench/bench.py --stages scaled reference --no-ttq --out bench/cpu.md

It prints one Markdown table, per setting and stage: the precision, parameters, milliseconds per
training step, tokens per second, achieved GFLOP/s and its share of the machine's measured matmul
ceiling, and peak memory; then, measured side by side in the same run, the speed ratios of the
lecture's plain gpt.py (`bench/reference.py`) and of a nanoGPT-shaped model of the same sizes
(`bench/nanogpt_shaped.py`, at whichever of fp32 and bf16 is faster for it) to the `scaled` stage;
how close `precision=auto` comes to the faster of fp32 and bf16 (scaled pinned to each); the
seconds the `scaled` stage needs to reach a target validation loss (time to quality); and the
issue's goals, as ratios, where the run measured them.

How each number is measured
---------------------------
- **Isolation.** Every row (and the ceiling, and the time-to-quality run) runs in its own fresh
  process, forked from a server process that has already imported torch (multiprocessing's
  "forkserver"), so that no row inherits another's threads, allocator caches or peak memory.
  `--inline` runs everything in this process instead (faster to start, less clean).
- **ms/step.** One training step exactly as `common.train.train` does it: set the learning rate,
  `common.data.get_batch`, forward, `zero_grad(set_to_none=True)`, backward, (clip,) the AdamW
  step from `common.train.make_optimizer`. `--warmup` steps are run first and not timed. On the
  CPU each of the `--steps` timed steps is timed on its own and the *median* is reported (robust
  to a busy machine); on CUDA the timed steps run back to back between two synchronisations and
  the *mean* is reported (timing each step would stop the CPU from queueing the next one).
- **Rounds.** The rows compared side by side (`scaled` at `auto` and pinned to each precision, the
  references) run in `--rounds` alternating rounds (default 3 on the CPU): round 1 of every row,
  then round 2, and so on, each in its own process; the table shows each row's median round and
  the report the ratio round by round. A shared machine's slow spell then hits every row of a
  round alike instead of making one row look slow.
- **tokens/s** = batch_size * block_size / (ms/step).
- **GFLOP/s** uses the usual estimate of training FLOPs (Kaplan et al. 2020; nanoGPT's
  `estimate_mfu`): per token, 6 * N for the weight matmuls, forward and backward, with N the
  parameters outside the two embedding tables (a lookup costs no multiply-adds; the lm_head
  does count), plus 12 * T * sum(attention width) for the attention scores and the weighted sum
  (QK^T and AV: 2 * T * width each forward, twice that backward; T = block_size, the full T x T
  computed), and 4 * T * n_embd for the causal average of the `averaging` stage. It ignores the
  element-wise work (softmax, masking, LayerNorm, ReLU, dropout, AdamW), which for models this
  small is much of the time, so it understates how busy the machine is; the bigram model has no
  matmul at all and shows 0.
- **ceiling.** The best of a few large square matmuls (`torch.mm`, n x n, 2 n^3 FLOPs) in fp32,
  and bf16 where the hardware has it (CPU: AMX or AVX512-BF16, CUDA: always; CUDA also TF32), with the same
  threads as the rows. "% of ceiling" is against the fp32 ceiling unless `--ceiling` says otherwise.
- **peak MB.** CPU: the process's peak resident memory (VmHWM), reset (via /proc/self/clear_refs)
  after torch is imported and the corpus loaded, so it covers building the model and training;
  "Δ MB" is that peak minus the resident memory at the reset (what the row itself added).
  CUDA: `torch.cuda.max_memory_allocated`, and Δ above what was allocated before the model.
- **time to quality.** The `scaled` stage trained by `common.train.train` itself (evaluations
  included, the one at step 0 too) at the nanoGPT CPU recipe (4 layers, 4 heads, n_embd 128,
  block 64, batch 12, lr 1e-3, 100 warm-up steps, cosine decay to 1e-4, 2,000 steps, dropout 0,
  evaluated every 250 steps on 200 batches per split): the wall seconds from the start of
  training to the end of the first evaluation whose validation loss is at most the target.
  `--ttq-set NAME=VALUE` changes any of its hyperparameters.

The settings benchmarked are data (SETTINGS below): on the CPU, every stage at the `cpu`
profile and `scaled` plus the reference at the nanoGPT recipe; on CUDA, every stage at the `gpu`
profile, and `scaled` plus the reference at the lecture's setting and at the nanoGPT recipe.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Only the standard library is imported at the top, because the child processes import this file
# again to find their task. (The parent imports torch through the stage registry, for the stage
# names, but never runs a torch operation: every measurement happens in a child.)

REFERENCE = "reference"  # the name of the lecture's plain gpt.py in the table and in --stages
NANOGPT = "nanogpt-shaped"  # a nanoGPT-shaped model of the same sizes (bench/nanogpt_shaped.py)
REFERENCES = (REFERENCE, NANOGPT)
PINNED = ("fp32", "bf16")  # a row named "stage@fp32" runs at that precision instead of precision=auto

# The nanoGPT CPU recipe (README of karpathy/nanoGPT: train_shakespeare_char on a MacBook):
# 4 layers, 4 heads, n_embd 128, block 64, batch 12, lr 1e-3 with 100 warm-up steps and cosine
# decay to 1e-4 over 2,000 steps, dropout 0. Its published result: val 1.88 after 2,000 steps.
# nanoGPT's command evaluated on 20 batches per split; 200 here give a steadier estimate
# (--ttq-set eval_iters=20 for theirs). Its other defaults (AdamW beta2 0.99, weight decay 0.1,
# gradient clipping at 1.0) are not copied: the project's TrainConfig defaults are used.
NANOGPT_RECIPE = dict(block_size=64, n_embd=128, n_head=4, n_layer=4, dropout=0.0, batch_size=12,
                      learning_rate=1e-3, warmup_iters=100, lr_decay=True, min_lr_ratio=0.1,
                      max_iters=2000, eval_interval=250, eval_iters=200, init="gpt2")  # nanoGPT's N(0, 0.02)

# Tiny stand-ins for --quick: seconds, not minutes, and a target any model passes quickly.
QUICK_RECIPE = dict(block_size=16, n_embd=32, n_head=4, n_layer=2, dropout=0.0, batch_size=4,
                    learning_rate=3e-3, warmup_iters=5, lr_decay=True, min_lr_ratio=0.1,
                    max_iters=60, eval_interval=20, eval_iters=4)
QUICK_TARGET = 3.5

# Goals from the issue, checked when their row is in the run (never in --quick).
# Ratios measured in one run on one machine (issue 12), so that they hold whatever the machine's speed:
STEP_GOAL_RATIO = 1.25  # scaled's step at least this many times faster than the nanoGPT-shaped model's
AUTO_GOAL_SLOWER = 0.10  # precision=auto at most 10% slower than the faster of fp32 and bf16
TTQ_GOAL_RATIO = 1.5  # val <= 1.88 at least this many times sooner than nanoGPT's recipe takes (2,000 steps)
GPU_RUN_GOAL_S = 60.0  # scaled at the lecture's setting, 5,000 steps, one H100


def settings_plan(device_type: str, quick: bool) -> list[dict[str, Any]]:
    """The settings to benchmark: a name, the stages in it, and each stage's hyperparameters.

    Each entry: {"name", "stages": {stage: settings dict}}. The reference model is listed as a
    stage named REFERENCE and uses the `scaled` stage's settings.
    """
    from common.profiles import LECTURE_GPT, get_profile, settings_for
    from stages import STAGE_NAMES

    def profile_setting(profile_name: str, name: str | None = None) -> dict[str, Any]:
        profile = get_profile(profile_name)
        return {"name": name or profile_name,
                "stages": {stage: settings_for(profile, stage) for stage in STAGE_NAMES}}

    def scaled_and_reference(name: str, settings: dict[str, Any]) -> dict[str, Any]:
        # scaled at precision=auto (what the runner trains with) and pinned to each precision (how close auto
        # comes to the faster one); the lecture-form reference at auto; the nanoGPT-shaped model at each
        # precision, so that scaled is compared with whichever of them is faster for it here
        rows = {"scaled": dict(settings), REFERENCE: dict(settings)}
        for precision in PINNED:
            rows[f"scaled@{precision}"] = dict(settings, precision=precision)
        for precision in PINNED:
            rows[f"{NANOGPT}@{precision}"] = dict(settings, precision=precision)
        return {"name": name, "stages": rows}

    if quick:
        return [profile_setting("smoke"), scaled_and_reference("recipe-tiny", QUICK_RECIPE)]
    if device_type == "cuda":
        return [profile_setting("gpu"), scaled_and_reference("lecture", LECTURE_GPT),
                scaled_and_reference("nanogpt-recipe", NANOGPT_RECIPE)]
    return [profile_setting("cpu"), scaled_and_reference("nanogpt-recipe", NANOGPT_RECIPE)]


# ----------------------------------------------------------------------------------------------
# Work done in the child processes. Each task is a plain dict; each result a plain dict.


def split_row(name: str) -> tuple[str, str | None]:
    """("scaled", "fp32") from "scaled@fp32"; (name, None) for a row at the setting's own precision."""
    stage, _, precision = name.partition("@")
    return stage, precision or None


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Run one task (in whatever process this is) and return its result."""
    import torch

    torch.set_num_threads(task["threads"])
    kind = task["kind"]
    if kind == "ceiling":
        return measure_ceiling(task)
    if kind == "step":
        return measure_steps(task)
    if kind == "train":
        return measure_training(task)
    raise ValueError(f"unknown task kind {kind!r}")


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
    out: dict[str, Any] = {"gflops": {}}
    for name, dtype in dtypes.items():
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = name == "tf32"
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        torch.mm(a, b)  # warm-up: library initialisation, thread pool start
        best = math.inf
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            inner = 10 if device.type == "cuda" else 1  # a GPU matmul is too short to time alone
            for _ in range(inner):
                torch.mm(a, b)
            _sync(device)
            best = min(best, (time.perf_counter() - t0) / inner)
        out["gflops"][name] = 2 * n**3 / best / 1e9
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # PyTorch's default
        out["device_name"] = torch.cuda.get_device_name(device)
    out["torch"] = torch.__version__
    out["threads"] = torch.get_num_threads()
    return out


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


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

    embeddings = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
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
        _sync(device)
        t0 = time.perf_counter()
        for i in range(warmup, warmup + steps):
            loss = step(i)
        _sync(device)
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


# ----------------------------------------------------------------------------------------------
# Running the tasks, each in a fresh process.


class Executor:
    """Runs each task in a fresh child process forked from a server that has imported torch."""

    def __init__(self, inline: bool = False):
        self.inline = inline
        self.context = None
        if not inline:
            import multiprocessing as mp

            self.context = mp.get_context("forkserver")
            # The server imports this file (as the children's __main__) and torch once; each child
            # is then a cheap fork of it that has run no torch operation and started no threads.
            # torch._dynamo is imported lazily by the first AdamW step (about 1.5 s, sympy included):
            # preloaded here so that it is not counted in the first row's time or memory.
            self.context.set_forkserver_preload(["__main__", "torch", "torch._dynamo", "common.train", "stages"])

    def __call__(self, task: dict[str, Any]) -> dict[str, Any]:
        if self.inline:
            return run_task(task)
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=1, mp_context=self.context) as pool:
            return pool.submit(run_task, task).result()


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


# ----------------------------------------------------------------------------------------------
# The report.


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, fmt)


TABLE_COLUMNS = ["setting", "stage", "precision", "params", "B×T", "ms/step", "tokens/s", "GFLOP/s", "% of ceiling",
                 "peak MB", "Δ MB"]


def table_rows(rows: list[dict[str, Any]], ceiling_gflops: float | None) -> list[list[str]]:
    """The cells of the table, one list per row (a failed row says why)."""
    out = []
    for row in rows:
        r = row.get("result")
        if r is None:
            out.append([row["setting"], split_row(row["stage"])[0], f"failed: {row.get('error', '?')}"]
                       + [""] * (len(TABLE_COLUMNS) - 3))
            continue
        gflops = r["flops_per_step"] / (r["ms"] / 1000) / 1e9 if r["ms"] > 0 else None
        share = 100 * gflops / ceiling_gflops if gflops is not None and ceiling_gflops else None
        precision = r.get("precision") or "?"
        out.append([
            row["setting"], split_row(row["stage"])[0], precision + (" (set)" if r.get("pinned") else " (auto)"),
            f"{r['params']:,}", f"{r['batch_size']}×{r['block_size']}",
            _num(r["ms"], ".2f"), _num(r["tokens_per_step"] / (r["ms"] / 1000), ",.0f"),
            _num(gflops, ".2f"), _num(share, ".1f"), _num(r["peak_mb"], ".0f"), _num(r["delta_mb"], ".0f"),
        ])
    return out


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def _slower(ms: float, best_ms: float) -> str:
    """How much slower ms is than best_ms, in words: "4.1% slower", or "2.0% faster (timing noise ...)"."""
    pct = 100 * (ms / best_ms - 1)
    return f"{pct:.1f}% slower" if pct > 0 else f"{-pct:.1f}% faster (timing noise: the same computation)"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table; the first three columns left-aligned, the rest right."""
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i >= 3 else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def build_report(machine: dict[str, Any], ceiling: dict[str, Any] | None, rows: list[dict[str, Any]],
                 ttq: dict[str, Any] | None, full_run: dict[str, Any] | None = None, ceiling_dtype: str = "fp32",
                 quick: bool = False) -> str:
    """The whole report as Markdown: machine, ceiling, the table, ratios, time to quality, goals."""
    device = machine["device"]
    lines, ceiling_gflops = report_head(machine, ceiling, ceiling_dtype, quick)
    lines.append("")
    lines.append(markdown_table(TABLE_COLUMNS, table_rows(rows, ceiling_gflops)))
    lines.append("")
    lines.append(table_note(rows, device))
    lines.append("")

    # the references against the scaled stage, wherever they ran at the same setting
    by_key = {(r["setting"], r["stage"]): r.get("result") for r in rows}
    fastest_nano = fastest_nanogpt_rows(by_key)
    for setting in dict.fromkeys(r["setting"] for r in rows):
        lines.extend(comparison_lines(setting, by_key))
    lines.extend(training_run_lines(ttq, full_run))

    if not quick:  # the goals, where this run measured them
        goals = goal_verdicts(device, by_key, fastest_nano, ttq, full_run)
        if goals:
            lines.append("")
            lines.append("Goals: " + "; ".join(goals) + ".")
    return "\n".join(lines) + "\n"


def report_head(machine: dict[str, Any], ceiling: dict[str, Any] | None, ceiling_dtype: str,
                quick: bool) -> tuple[list[str], float | None]:
    """The lines of the title, the machine and the matmul ceiling; and the ceiling's GFLOP/s the % column is
    against (None where it was not measured)."""
    lines = []
    title = "GPT Ladder benchmark" + (" (--quick: tiny settings, numbers mean nothing)" if quick else "")
    lines.append(f"## {title}\n")
    device = machine["device"]
    where = f"{machine['device_name']} ({device})" if machine.get("device_name") else device
    yes = {True: "yes", False: "no"}
    lines.append(f"- **machine**: {machine['date']} · {machine['cpu']} ({machine['cores']} cores; bf16 AMX: "
                 f"{yes[bool(machine['amx_bf16'])]}, AVX512-BF16: {yes[bool(machine.get('avx512_bf16'))]}) · "
                 f"device {where} · {machine['threads']} threads · "
                 f"torch {machine.get('torch', '?')} · Python {machine['python']}")
    ceiling_gflops = None
    if ceiling is not None and ceiling.get("gflops"):
        parts = [f"{k} {v:,.1f} GFLOP/s" for k, v in ceiling["gflops"].items()]
        lines.append(f"- **matmul ceiling** ({ceiling['n']}×{ceiling['n']}, best of {ceiling['repeats']}): "
                     + ", ".join(parts) + f"; the % column is against {ceiling_dtype}")
        ceiling_gflops = ceiling["gflops"].get(ceiling_dtype)
    elif ceiling is not None:
        lines.append(f"- **matmul ceiling**: failed: {ceiling.get('error')}")
    return lines, ceiling_gflops


def table_note(rows: list[dict[str, Any]], device: str) -> str:
    """The paragraph under the table: how ms/step, GFLOP/s and peak MB were measured in this run."""
    timing = "median of each timed step" if device == "cpu" else "mean over the timed steps"
    rounds = max((len(r["result"].get("rounds_ms", [])) for r in rows if r.get("result")), default=1)
    if rounds > 1:
        timing += (f" (the rows compared side by side: {rounds} alternating rounds, each row's median round "
                   f"shown)")
    return (f"ms/step: {timing} of a full training step (batch, forward, backward, AdamW). GFLOP/s: "
            f"6·N(non-embedding) + 12·T·(attention width) FLOPs per token. peak MB: "
            f"{'peak resident memory of the row’s process (Δ: above its level before the model was built)' if device == 'cpu' else 'peak CUDA memory allocated (Δ: above the level before the model was built)'}.")


def _nanogpt_rows(setting: str, by_key: dict[tuple[str, str], Any]) -> list[dict[str, Any]]:
    """The nanoGPT-shaped model's results at `setting`, one per pinned precision that ran."""
    return [n for n in (by_key.get((setting, f"{NANOGPT}@{p}")) for p in PINNED) if n]


def fastest_nanogpt_rows(by_key: dict[tuple[str, str], Any]) -> dict[str, dict[str, Any]]:
    """Setting -> the nanoGPT-shaped row at its faster precision, for every setting where it ran."""
    fastest = {}
    for setting in dict.fromkeys(setting for setting, _ in by_key):
        nanos = _nanogpt_rows(setting, by_key)
        if nanos:
            fastest[setting] = min(nanos, key=lambda r: r["ms"])
    return fastest


def comparison_lines(setting: str, by_key: dict[tuple[str, str], Any]) -> list[str]:
    """At one setting: each reference's step against scaled's, precision=auto against the pinned
    precisions, and the training steps' time of a whole scaled run."""
    lines = []
    ref, scaled = by_key.get((setting, REFERENCE)), by_key.get((setting, "scaled"))
    nanos = _nanogpt_rows(setting, by_key)
    if ref and scaled:
        lines.append(f"- **reference / scaled** at {setting}: {ref['ms']:.2f} ms / {scaled['ms']:.2f} ms = "
                     f"**{ref['ms'] / scaled['ms']:.2f}×** (the lecture's gpt.py is that many times slower)")
    if nanos and scaled:
        nano = min(nanos, key=lambda r: r["ms"])
        each = ", ".join(f"{n['precision']} {n['ms']:.2f} ms" for n in nanos)
        lines.append(f"- **nanoGPT-shaped / scaled** at {setting}: {nano['ms']:.2f} ms ({nano['precision']}, the "
                     f"faster of {each}) / {scaled['ms']:.2f} ms ({scaled['precision']}) = "
                     f"**{nano['ms'] / scaled['ms']:.2f}×** (above 1: the project's step is faster)")
        if len(scaled.get("rounds_ms", [])) > 1:
            per_round = ", ".join(f"{n / o:.2f}×" for n, o in zip(nano["rounds_ms"], scaled["rounds_ms"]))
            lines.append(f"  - round by round: {per_round}")
    if scaled and scaled.get("precision") and not scaled.get("pinned"):
        lines.append(auto_precision_line(setting, scaled, {p: by_key.get((setting, f"scaled@{p}")) for p in PINNED}))
    if scaled:
        lines.append(f"- scaled at {setting}: {scaled['max_iters']:,} steps × {scaled['ms']:.2f} ms = "
                     f"{scaled['max_iters'] * scaled['ms'] / 1000:,.1f} s of training steps (evaluations excluded)")
    return lines


def auto_precision_line(setting: str, scaled: dict[str, Any], pinned: dict[str, dict[str, Any] | None]) -> str:
    """What precision=auto chose for scaled at `setting`, and how it compares with scaled pinned to each precision."""
    line = (f"- **precision=auto** at {setting}: chose **{scaled['precision']}** by measurement on this "
            f"machine (common/precision.py): {scaled['ms']:.2f} ms")
    if all(pinned.values()):
        best = min(pinned.values(), key=lambda r: r["ms"])
        line += (f"; pinned: fp32 {pinned['fp32']['ms']:.2f} ms, bf16 {pinned['bf16']['ms']:.2f} ms; auto is "
                 f"{_slower(scaled['ms'], best['ms'])} than the faster ({best['precision']})")
    return line


def training_run_lines(ttq: dict[str, Any] | None, full_run: dict[str, Any] | None) -> list[str]:
    """The time-to-quality run and the full run, each where it ran (or why it failed)."""
    lines = []
    for label, run in (("time to quality", ttq), ("full run", full_run)):
        if run is None:
            continue
        if "error" in run:
            lines.append(f"- **{label}**: failed: {run['error']}")
            continue
        how = (f"{run['setting']}, eval every {run['eval_interval']} steps on {run['eval_iters']} batches per split, "
               f"evaluations included")
        if label == "full run":
            lines.append(f"- **full run** ({how}): {run['steps_run']:,} steps in **{run['wall']:.1f} s**, "
                         f"final val {run['final_val']:.4f}, best {run['best_val']:.4f} at step {run['best_step']:,}")
        elif run["reached"]:
            after = (f"; trained on to step {run['steps_run']:,} ({run['wall']:.1f} s): final val {run['final_val']:.4f}"
                     if run["steps_run"] > run["step"] + 1 else "")
            lines.append(f"- **time to quality** (val ≤ {run['target']}, {how}): **{run['seconds']:.1f} s**, "
                         f"val {run['val_loss']:.4f} at step {run['step']:,}{after}")
        else:
            lines.append(f"- **time to quality** (val ≤ {run['target']}, {how}): **not reached** in "
                         f"{run['steps_run']:,} steps ({run['wall']:.1f} s); best val {run['best_val']:.4f} at "
                         f"step {run['best_step']:,}")
    return lines


def goal_verdicts(device: str, by_key: dict[tuple[str, str], Any], fastest_nano: dict[str, dict[str, Any]],
                  ttq: dict[str, Any] | None, full_run: dict[str, Any] | None) -> list[str]:
    """The issue's goals that this run measured, each with its numbers and whether it is met."""
    goals = []
    recipe_scaled, recipe_nano = by_key.get(("nanogpt-recipe", "scaled")), fastest_nano.get("nanogpt-recipe")
    if recipe_scaled and recipe_nano:
        ratio = recipe_nano["ms"] / recipe_scaled["ms"]
        goals.append(f"scaled's step at the nanoGPT recipe ≥ {STEP_GOAL_RATIO:g}× faster than the nanoGPT-shaped "
                     f"model's: {ratio:.2f}× ({_met(ratio >= STEP_GOAL_RATIO)})")
    pinned = [by_key.get(("nanogpt-recipe", f"scaled@{p}")) for p in PINNED]
    if recipe_scaled and all(pinned):
        best = min(r["ms"] for r in pinned)
        goals.append(f"precision=auto ≤ {AUTO_GOAL_SLOWER:.0%} slower than the faster precision: "
                     f"{_slower(recipe_scaled['ms'], best)} "
                     f"({_met(recipe_scaled['ms'] <= best * (1 + AUTO_GOAL_SLOWER))})")
    if ttq and "error" not in ttq and ttq.get("setting") == "nanogpt-recipe" and recipe_nano and recipe_scaled:
        goals.append(ttq_goal_verdict(ttq, recipe_scaled, recipe_nano))
    lecture_scaled = by_key.get(("lecture", "scaled"))
    if device.startswith("cuda") and lecture_scaled:
        projected = lecture_scaled["max_iters"] * lecture_scaled["ms"] / 1000
        goals.append(f"scaled at the lecture's setting, 5,000 steps ≤ {GPU_RUN_GOAL_S:g} s: {projected:.1f} s of "
                     f"steps ({'met' if projected <= GPU_RUN_GOAL_S else 'not met'}, evaluations excluded)")
    if device.startswith("cuda") and full_run and "error" not in full_run and full_run.get("setting") == "lecture":
        goals.append(f"the same with evaluations: {full_run['wall']:.1f} s "
                     f"({'met' if full_run['wall'] <= GPU_RUN_GOAL_S else 'not met'})")
    return goals


def ttq_goal_verdict(ttq: dict[str, Any], recipe_scaled: dict[str, Any], recipe_nano: dict[str, Any]) -> str:
    """Time to quality against nanoGPT's recipe (its max_iters steps), both in steps × the median step time."""
    # both sides on one footing: steps x the median step time measured above, evaluations excluded
    # (the time-to-quality run's own wall time, its evaluations included, is printed above)
    theirs = recipe_nano["max_iters"] * recipe_nano["ms"] / 1000
    if not ttq["reached"]:
        return f"val ≤ {ttq['target']} ≥ {TTQ_GOAL_RATIO:g}× sooner than nanoGPT's recipe: not reached (not met)"
    ours = ttq["step"] * recipe_scaled["ms"] / 1000
    ratio = theirs / ours
    return (f"val ≤ {ttq['target']} ≥ {TTQ_GOAL_RATIO:g}× sooner than nanoGPT's recipe, in steps × "
            f"ms/step: {ttq['step']:,} × {recipe_scaled['ms']:.2f} ms = {ours:.1f} s against "
            f"{recipe_nano['max_iters']:,} × {recipe_nano['ms']:.2f} ms = {theirs:.1f} s, {ratio:.2f}× "
            f"({_met(ratio >= TTQ_GOAL_RATIO and ttq['target'] <= 1.88)})")


# ----------------------------------------------------------------------------------------------
# The command line.


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"error: {message} (see python bench/bench.py --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from stages import STAGE_NAMES

    p = _Parser(prog="bench/bench.py", description="Benchmark the GPT Ladder stages: speed, efficiency, memory, "
                                                     "time to quality.",
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="How each number is measured: see the docstring at the top of bench/bench.py.")
    p.add_argument("--quick", action="store_true", help="tiny settings and a few steps: checks it works, in seconds")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda / cuda:N")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per row (default: every core, "
                                                              f"{default_threads()} here)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per row (default 50; --quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps before them (default 10; --quick 1)")
    p.add_argument("--rounds", type=int, default=None,
                   help="alternating rounds of the rows compared side by side (scaled and the references), "
                        "the median round reported (default 3 on the CPU, 1 on CUDA and with --quick)")
    p.add_argument("--stages", nargs="+", choices=STAGE_NAMES + list(REFERENCES), metavar="STAGE",
                   help=f"only these rows: any of {', '.join(STAGE_NAMES + list(REFERENCES))}")
    p.add_argument("--settings", nargs="+", metavar="NAME",
                   help="only these settings (cpu: cpu nanogpt-recipe; cuda: gpu lecture nanogpt-recipe)")
    p.add_argument("--ceiling", choices=["fp32", "tf32", "bf16"], default="fp32",
                   help="which measured matmul ceiling the %% column is against (default fp32)")
    p.add_argument("--ceiling-n", type=int, default=None, help="matmul size (default 2048 CPU, 8192 CUDA; --quick 256)")
    p.add_argument("--no-ttq", action="store_true", help="skip the time-to-quality run")
    p.add_argument("--ttq-target", type=float, default=None, help="validation loss to reach (default 1.88; --quick 3.5)")
    p.add_argument("--ttq-set", action="append", default=[], metavar="NAME=VALUE",
                   help="change a hyperparameter of the time-to-quality run (repeatable), e.g. "
                        "--ttq-set eval_iters=20 --ttq-set learning_rate=2e-3")
    p.add_argument("--ttq-continue", action="store_true",
                   help="train to max_iters after reaching the target (reports the final loss too)")
    p.add_argument("--full-run", action="store_true",
                   help="also train scaled to the end at the headline setting (cuda: lecture, cpu: nanogpt-recipe) "
                        "with common.train.train and report its wall time, evaluations included")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and batches (default 0)")
    p.add_argument("--data", help="corpus path (default: $GPT_LADDER_DATA, the cache, or download)")
    p.add_argument("--inline", action="store_true", help="run every row in this process (no fresh process per row)")
    p.add_argument("--out", help="also write the report (Markdown) to this file")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one JSON task, print its result
    return p


class UsageError(Exception):
    """A command-line value the parser accepts but the benchmark cannot use; main prints it and exits with 2."""


@dataclasses.dataclass
class Options:
    """The command line resolved: the defaults that depend on --quick and the device filled in, checked."""

    quick: bool
    device: str
    device_type: str
    threads: int
    steps: int
    warmup: int
    rounds: int
    plan: list[dict[str, Any]]
    ttq_overrides: dict[str, Any]


def resolve_options(args: argparse.Namespace) -> Options:
    """The parsed arguments with their defaults filled in and checked; raises UsageError."""
    from common.errors import LadderError
    from common.profiles import parse_overrides
    from stages import STAGES

    quick = args.quick
    device = args.device
    device_type = device.split(":")[0]
    if device_type not in ("cpu", "cuda"):
        raise UsageError(f"--device must be cpu or cuda[:N], got {device!r}")
    threads = args.threads if args.threads is not None else default_threads()
    steps = args.steps if args.steps is not None else (3 if quick else 50)
    warmup = args.warmup if args.warmup is not None else (1 if quick else 10)
    rounds = args.rounds if args.rounds is not None else (1 if quick or device_type == "cuda" else 3)
    if threads < 1 or steps < 1 or warmup < 0 or rounds < 1:
        raise UsageError("--threads, --steps and --rounds must be positive, --warmup not negative")
    plan = settings_plan(device_type, quick)
    if args.settings:
        unknown = set(args.settings) - {s["name"] for s in plan}
        if unknown:
            raise UsageError(f"unknown setting(s) {', '.join(sorted(unknown))}: choose from "
                             f"{', '.join(s['name'] for s in plan)}")
        plan = [s for s in plan if s["name"] in args.settings]
    try:
        ttq_overrides = parse_overrides(args.ttq_set, [STAGES["scaled"].Config])
    except LadderError as exc:
        raise UsageError(str(exc).replace("--set", "--ttq-set")) from exc
    return Options(quick=quick, device=device, device_type=device_type, threads=threads, steps=steps,
                   warmup=warmup, rounds=rounds, plan=plan, ttq_overrides=ttq_overrides)


class Attempts:
    """Runs tasks with an Executor, saying on stderr how long each took; a task that fails is reported
    there and returns {"error": ...}, so that one failed row does not lose the others."""

    def __init__(self, run: Executor):
        self.run = run
        self.failed = False  # whether any task failed (the exit status says so)

    def __call__(self, what: str, task: dict[str, Any]) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            result = self.run(task)
        except Exception as exc:  # one failed row must not lose the others
            self.failed = True
            print(f"bench: {what} failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:120]}
        print(f"bench: {what} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        return result


def machine_description(info: dict[str, Any], device: str, threads: int) -> dict[str, Any]:
    """The report's machine line, as known before any task ran (torch's version comes from the ceiling task)."""
    return {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "device": device,
            "cpu": info["cpu"], "cores": os.cpu_count(), "amx_bf16": info["amx_bf16"],
            "avx512_bf16": info["avx512_bf16"], "threads": threads,
            "python": platform.python_version()}


def run_ceiling(attempt: Attempts, base: dict[str, Any], options: Options, info: dict[str, Any],
                ceiling_n: int | None) -> dict[str, Any]:
    """The machine's matmul ceiling (and what torch sees), measured in its own task."""
    quick = options.quick
    n = ceiling_n or (256 if quick else (8192 if options.device_type == "cuda" else 2048))
    ceiling = attempt("matmul ceiling", {**base, "kind": "ceiling", "n": n, "repeats": 2 if quick else 5,
                                         "bf16": info["amx_bf16"] or info["avx512_bf16"]})
    ceiling.update(n=n, repeats=2 if quick else 5)
    return ceiling


def run_rows(attempt: Attempts, base: dict[str, Any], options: Options, only: list[str] | None) -> list[dict[str, Any]]:
    """Every stage at every setting (only the stages in `only`, if given). The rows compared side by side
    (a setting with the references) run in alternating rounds, so that a slow spell of a shared machine
    hits them all alike, not one of them."""
    rows = []
    for setting in options.plan:
        names = [name for name in setting["stages"] if not only or split_row(name)[0] in only]
        side_by_side = any(split_row(name)[0] in REFERENCES for name in names)
        repeat = options.rounds if side_by_side else 1
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for r in range(repeat):
            for name in names:
                task = {**base, "kind": "step", "stage": name, "settings": setting["stages"][name],
                        "warmup": options.warmup, "steps": options.steps}
                what = f"{setting['name']}/{name}" + (f" (round {r + 1} of {repeat})" if repeat > 1 else "")
                runs[name].append(attempt(what, task))
        rows.extend(median_round_row(setting["name"], name, runs[name]) for name in names)
    return rows


def median_round_row(setting: str, name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row of the table from its rounds: the first failure if any round failed, else the round with
    the median time, and every round's time beside it."""
    row = {"setting": setting, "stage": name}
    failed_run = next((run for run in runs if "error" in run), None)
    if failed_run:
        row["error"] = failed_run["error"]
    else:  # the round with the median time, and every round's time beside it
        ordered = sorted(runs, key=lambda run: run["ms"])
        row["result"] = dict(ordered[(len(ordered) - 1) // 2], rounds_ms=[run["ms"] for run in runs])
    return row


def run_training(attempt: Attempts, base: dict[str, Any], options: Options,
                 args: argparse.Namespace) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(time to quality, full run) of the scaled stage, each None where it was not asked for."""
    quick = options.quick

    def training_task(name: str, settings: dict[str, Any], target: float | None, stop: bool) -> dict[str, Any]:
        result = attempt(f"training run ({name})", {**base, "kind": "train", "settings": settings,
                                                    "target": target, "stop_at_target": stop})
        result["setting"] = name
        return result

    ttq = full_run = None
    if not args.no_ttq and (not args.stages or "scaled" in args.stages):
        recipe = {**(QUICK_RECIPE if quick else NANOGPT_RECIPE), **options.ttq_overrides}
        target = args.ttq_target if args.ttq_target is not None else (QUICK_TARGET if quick else 1.88)
        ttq = training_task("recipe-tiny" if quick else "nanogpt-recipe", recipe, target, not args.ttq_continue)
    if args.full_run:
        from common.profiles import LECTURE_GPT
        if quick:
            name, settings = "recipe-tiny", QUICK_RECIPE
        elif options.device_type == "cuda":
            name, settings = "lecture", LECTURE_GPT
        else:
            name, settings = "nanogpt-recipe", NANOGPT_RECIPE
        full_run = training_task(name, settings, None, False)
    return ttq, full_run


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:  # a task as JSON, the result as JSON (for running one row by hand under a profiler)
        print(json.dumps(run_task(json.loads(args.worker))))
        return 0
    try:
        options = resolve_options(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Children inherit the environment: OpenMP then starts only the threads asked for.
    os.environ["OMP_NUM_THREADS"] = str(options.threads)
    os.environ["MKL_NUM_THREADS"] = str(options.threads)
    if args.data:
        os.environ["GPT_LADDER_DATA"] = args.data

    info = cpu_info()
    machine = machine_description(info, options.device, options.threads)
    attempt = Attempts(Executor(inline=args.inline))
    base = {"device": options.device, "threads": options.threads, "seed": args.seed, "data": args.data}

    # 1. the machine's matmul ceiling (and what torch sees)
    ceiling = run_ceiling(attempt, base, options, info, args.ceiling_n)
    machine["torch"] = ceiling.get("torch", "?")
    if ceiling.get("device_name"):
        machine["device_name"] = ceiling["device_name"]
    # 2. every stage at every setting, the rows compared side by side in alternating rounds
    rows = run_rows(attempt, base, options, args.stages)
    # 3. time to quality (and, if asked, one complete run) of the scaled stage
    ttq, full_run = run_training(attempt, base, options, args)

    report = build_report(machine, ceiling, rows, ttq, full_run, ceiling_dtype=args.ceiling, quick=options.quick)
    print(report)
    if args.out:
        from common.io import write_text
        write_text(args.out, report)
        print(f"wrote {args.out}", file=sys.stderr)
    return 1 if attempt.failed else 0


if __name__ == "__main__":
    sys.exit(main())
