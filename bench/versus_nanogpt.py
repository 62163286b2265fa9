#!/usr/bin/env python3
"""The lecture's GPT trained by this project's runner and by nanoGPT's own train.py, side by side.

    python bench/versus_nanogpt.py prepare --nanogpt PATH   # nanoGPT's scripts and data -> .nanogpt/ (ignored)
    python bench/versus_nanogpt.py run --device cuda        # both tools, with torch.compile and then without
    python bench/versus_nanogpt.py run --device cpu --tiny  # the rehearsal: a tiny model, a minute on a CPU

`prepare` copies nanoGPT's train.py, model.py, configurator.py and config/train_shakespeare_char.py from a
checkout of karpathy/nanoGPT (a work tree, or a git directory without one) into `.nanogpt/`, and writes its
`data/shakespeare_char/` (train.bin, val.bin, meta.pkl) from this project's corpus the way nanoGPT's
prepare.py does (sorted characters, the first 90% for training, uint16 ids): the same split as the
project's. Nothing of nanoGPT is committed here; name `.nanogpt` in a device call's carry.

`run` trains, in turn, `python train.py config/train_shakespeare_char.py` in `.nanogpt/` and
`python runner.py --profile lecture --stage scaled` with nanoGPT's schedule set (`--set`: learning rate
1e-3, 100 warm-up steps, cosine to 1e-4 at the last step, clip 1.0, weight decay 0.1, an evaluation of 200
batches per split every 250 steps): the same size (6 layers, 6 heads, n_embd 384, context 256, batch 64,
dropout 0.2) and steps. What still differs is written under the table: the models themselves (nanoGPT's
has GELU, no biases and a token table shared with the output layer; the lecture's has ReLU, biases and
separate tables), AdamW's beta2 (0.99 there, 0.999 here), weight decay on every parameter here (matrices
only there), the warm-up's first step, and the last validation loss (nanoGPT's is an estimate over --eval-iters
batches, the project's the whole split).

Each run is a child process on a pseudo-terminal (so output comes line by line and progress bars are drawn),
each piece of its output (a line, or a bar's redraw) stamped with the seconds from the process's start to
the arrival of its first byte, so both tools are measured the same way from outside:
- **ms/step**: steps over wall time between evaluations (the stretches from one evaluation to the next,
  the evaluations themselves left out; the first stretch left out too, as warm-up and compilation; each
  stretch timed from a quarter in, so that a tool queueing GPU work ahead of it, as the runner does, is timed
  with the same lead at both ends), from nanoGPT's "iter N" lines and the runner's progress bar;
- **tokens/s** = batch x context / (ms/step); **MFU**: tokens/s x training FLOPs per token (6 N + 12 L H Q
  T, nanoGPT's estimate_mfu, N the parameters that multiply: the embedding tables left out, a shared
  output layer counted) over the GPU's bf16 peak (`--peak-tflops`, else measured at the start: the best of a
  few 8192^3 bf16 matrix products, in a process of its own);
- **s to target**: seconds from the process's start to the end of the first evaluation at or under
  `--target` (1.48, the lecture's);
- **peak MB**: torch.cuda.max_memory_allocated (the runner's run.json; nanoGPT's through a wrapper that
  prints it when its train.py returns); **val at end**: the last evaluation's validation loss.
The compiled pair runs first (each tool at its best), then the uncompiled one, nanoGPT first in each. Each
run has its own time limit and the whole a `--budget`; a run past its limit, or stopped by SIGTERM, is cut
short and keeps what it measured, and the table (`--out`, default .nanogpt/versus-nanogpt.md) is rewritten
after every run.
"""
from __future__ import annotations

import argparse
import math
import os
import pickle
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.profiles import LECTURE_GPT as LECTURE_SETTINGS  # noqa: E402

NANOGPT_FILES = ["train.py", "model.py", "configurator.py", "config/train_shakespeare_char.py"]
SIZE = ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "dropout")  # what both tools are given
LECTURE_GPT = {name: LECTURE_SETTINGS[name] for name in SIZE}  # the lecture profile's GPT, nanoGPT's config's too
TINY = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=8, dropout=0.2)
# nanoGPT's config/train_shakespeare_char.py, as the runner's settings (what it cannot set is said in the note)
SCHEDULE = dict(learning_rate=1e-3, warmup_iters=100, lr_decay=True, min_lr_ratio=0.1, grad_clip=1.0,
                weight_decay=0.1)
# nanoGPT's train.py run as a script, then its peak GPU memory printed (train.py ends without printing it)
WRAPPER = ("import runpy, sys, torch; sys.argv = ['train.py'] + sys.argv[1:]; runpy.run_path('train.py', "
           "run_name='__main__'); torch.cuda.is_available() and print('peak_memory_mb', "
           "torch.cuda.max_memory_allocated() / 2**20)")


# -- prepare ------------------------------------------------------------------------------------------------

def nanogpt_file(source: Path, name: str) -> bytes:
    """A file of nanoGPT from a work tree, or from a git directory's HEAD."""
    if (source / name).is_file():
        return (source / name).read_bytes()
    shown = subprocess.run(["git", "--git-dir", str(source), "show", f"HEAD:{name}"], capture_output=True)
    if shown.returncode != 0:
        raise SystemExit(f"error: {source} has no {name}: give a checkout of karpathy/nanoGPT (or its .git folder)")
    return shown.stdout


def prepare(source: Path, dest: Path, corpus: str | None) -> None:
    """nanoGPT's scripts from `source`, and its shakespeare_char data written from the project's own dataset (the
    same characters, vocabulary and 90/10 split as nanoGPT's prepare.py makes)."""
    import numpy as np

    from common.data import load_dataset
    for name in NANOGPT_FILES:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(nanogpt_file(source, name))
    dataset = load_dataset(corpus)
    chars = dataset.tokenizer.chars
    data = dest / "data" / "shakespeare_char"
    data.mkdir(parents=True, exist_ok=True)
    dataset.train.numpy().astype(np.uint16).tofile(data / "train.bin")
    dataset.val.numpy().astype(np.uint16).tofile(data / "val.bin")
    with open(data / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)),
                     "stoi": {ch: i for i, ch in enumerate(chars)}}, f)
    print(f"wrote {dest}: {', '.join(NANOGPT_FILES)}; data/shakespeare_char: {len(dataset.train):,} training and "
          f"{len(dataset.val):,} validation characters, vocabulary {len(chars)}")


# -- one run, timed from outside ----------------------------------------------------------------------------

@dataclass
class Timed:
    """A child process's output, each piece (a line, or a progress bar's redraw) with its seconds since start."""
    pieces: list[tuple[float, str]] = field(default_factory=list)
    wall: float = 0.0
    returncode: int | None = None
    cut_short: bool = False


STOP = {"asked": False}  # set by SIGTERM (the session's time limit): the run in progress ends as cut short


def run_timed(cmd: list[str], cwd: Path, limit: float, log) -> Timed:
    """Run cmd on a pseudo-terminal (line-buffered output, progress bars drawn) for at most `limit` seconds; each
    piece of output time-stamped when its first byte arrived (a bar's redraw is ended only by the next write)."""
    import fcntl
    import pty
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 250, 0, 0))  # wide: no bar cut short
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # the child a little nicer than this reader, so its output is read (and time-stamped) as it comes even when
    # its threads fill every core (a CPU run); on a GPU machine the cores are idle and it changes nothing
    nice = ["nice", "-n", "5"] if shutil.which("nice") else []
    start = time.monotonic()
    proc = subprocess.Popen(nice + cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    out, pending, pending_since = Timed(), "", None
    try:
        while True:
            if time.monotonic() - start >= limit or STOP["asked"]:
                out.cut_short = True
                break
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536).decode(errors="replace")
            except OSError:  # the child closed its side
                data = ""
            if not data:
                break
            now = time.monotonic() - start
            log.write(data)
            if pending_since is None:
                pending_since = now  # the first byte of the piece being received
            *done, rest = re.split(r"[\r\n]", pending + data)
            for i, piece in enumerate(done):  # the first ends the piece begun earlier, the others came now
                if piece.strip():
                    out.pieces.append((pending_since if i == 0 else now, piece))
            if done:
                pending_since = now if rest else None
            pending = rest
    finally:
        if proc.poll() is None:  # SIGTERM first: the runner stops at the end of a step and saves its checkpoint
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        os.close(master)
        out.returncode = proc.wait()
        out.wall = time.monotonic() - start
    return out


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def curve_losses(curve: Path, evals: list[tuple[int, float, float]]) -> list[tuple[int, float, float]]:
    """The runner's evaluations with their losses from its curve.csv (5 decimals; the bar shows 3), each at the
    time the bar reported it."""
    import csv
    with open(curve, newline="") as f:
        losses = {int(row["step"]): float(row["val_loss"]) for row in csv.DictReader(f)}
    return [(step, t, losses.get(step, val)) for step, t, val in evals]


def progress(timed: Timed, step_pattern: str, eval_pattern: str
             ) -> tuple[list[tuple[int, float]], list[tuple[int, float, float]]]:
    """([(step, seconds)], [(step, seconds, val_loss)]) from a run's output, as its tool prints them (Tool's
    patterns); each evaluation once, at the first piece that shows it (a bar's status stays until the next)."""
    steps, evals = [], {}
    for t, piece in timed.pieces:
        piece = ANSI.sub("", piece)
        if m := re.search(step_pattern, piece):
            steps.append((int(m[1]), t))
        if m := re.search(eval_pattern, piece):
            evals.setdefault(int(m[1]), (int(m[1]), t, float(m[2])))
    return steps, list(evals.values())


def ms_per_step(steps: list[tuple[int, float]], eval_interval: int) -> float | None:
    """Wall ms per step between evaluations: within each stretch k*E < step < (k+1)*E (k >= 1: the first stretch
    holds the warm-up and the compilation), the seconds from its first sample to its last over the steps between,
    both taken once a quarter of the stretch has passed. A tool that does not wait for the GPU at every step (the
    runner; nanoGPT reads the loss before each log line) reports a step when it is queued: after an evaluation
    the queue is empty and its first reports come as the steps run, later ones a full queue ahead of them; from a
    quarter in, both ends are that same lead ahead, so their difference is the steps' own time."""
    seconds, count = 0.0, 0
    by_stretch: dict[int, list[tuple[int, float]]] = {}
    for n, t in steps:
        if n % eval_interval >= eval_interval // 4:
            by_stretch.setdefault(n // eval_interval, []).append((n, t))
    for k, samples in by_stretch.items():
        if k >= 1 and len(samples) >= 2 and samples[-1][0] > samples[0][0]:
            seconds += samples[-1][1] - samples[0][1]
            count += samples[-1][0] - samples[0][0]
    return 1e3 * seconds / count if count else None


# -- the two tools ------------------------------------------------------------------------------------------

def nanogpt_flops_per_token(size: dict) -> float:
    """6 N + 12 L H Q T for nanoGPT's model (bias=False): N = its parameters without the position table (the
    token table is the output layer too), as its get_num_params counts them."""
    L, C, T = size["n_layer"], size["n_embd"], size["block_size"]
    n = L * (12 * C * C + 2 * C) + C + 65 * C  # per block: ln_1, qkv, proj, ln_2, fc, proj; ln_f; wte (65 characters)
    return 6 * n + 12 * L * C * T


def runner_flops_per_token(size: dict) -> float:
    from bench.measure import training_flops_per_token
    from common.profiles import get_profile, make_configs, settings_for
    from stages import STAGES
    settings = {**settings_for(get_profile("lecture"), "scaled"), **size}
    config, _ = make_configs(STAGES["scaled"].Config, settings, 65)  # Tiny Shakespeare's 65 characters
    return training_flops_per_token(STAGES["scaled"].Model(config), config.block_size)[1]


def nanogpt_command(python: str, size: dict, iters: int, eval_interval: int, eval_iters: int, device: str,
                    compiled: bool, out_dir: str) -> list[str]:
    dtype = "bfloat16" if device.startswith("cuda") else "float32"
    args = {**size, **dict(max_iters=iters, lr_decay_iters=iters, eval_interval=eval_interval,
                           eval_iters=eval_iters, log_interval=10, device=device, dtype=dtype, compile=compiled,
                           out_dir=out_dir)}
    return [python, "-c", WRAPPER, "config/train_shakespeare_char.py", *(f"--{k}={v}" for k, v in args.items())]


def runner_command(python: str, size: dict, iters: int, eval_interval: int, eval_iters: int, device: str,
                   compiled: bool, out_dir: str) -> list[str]:
    settings = {**size, **SCHEDULE, **dict(max_iters=iters, eval_interval=eval_interval, eval_iters=eval_iters)}
    sets = [a for k, v in settings.items() for a in ("--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}")]
    return [python, str(ROOT / "runner.py"), "--profile", "lecture", "--stage", "scaled", "--seeds", "0",
            "--device", device, "--jobs", "1", "--out", out_dir, *sets, *(["--compile"] if compiled else [])]


def nanogpt_read_back(timed: Timed, scratch: Path, evals: list) -> tuple[float | None, list]:
    """(peak MB, evaluations): the wrapper's last line; the evaluations as its log printed them."""
    peak = next((float(p.split()[-1]) for _, p in timed.pieces if p.startswith("peak_memory_mb")), None)
    return peak, evals


def runner_read_back(timed: Timed, scratch: Path, evals: list) -> tuple[float | None, list]:
    """(peak MB, evaluations): from the run's record and curve.csv, when it finished."""
    from common.io import read_json
    records = list(scratch.glob("*/runs/scaled/seed0/run.json"))
    if not records:
        return None, evals
    return read_json(records[0]).get("peak_memory_mb"), curve_losses(records[0].with_name("curve.csv"), evals)


@dataclass(frozen=True)
class Tool:
    """How one tool is run and read: its command, its folder, the patterns of its step counts and evaluations in
    its output, its FLOPs per token, and what it leaves behind (peak memory, exact losses)."""
    command: Callable[..., list[str]]
    folder: Callable[[argparse.Namespace], Path]
    step_pattern: str
    eval_pattern: str
    flops_per_token: Callable[[dict], float]
    read_back: Callable[[Timed, Path, list], tuple[float | None, list]]


TOOLS = {
    "nanoGPT": Tool(nanogpt_command, lambda args: args.nanogpt_dir, r"^\s*iter (\d+): loss",
                    r"^\s*step (\d+): train loss [\d.]+, val loss ([\d.]+)", nanogpt_flops_per_token,
                    nanogpt_read_back),
    # the run's bar ("| 250/5000 [") and, after each evaluation, the ladder bar's status ("step 250 val 1.234")
    "runner": Tool(runner_command, lambda args: ROOT, r"\| *(\d+)/\d+ \[", r"step (\d+) val ([\d.]+)",
                   runner_flops_per_token, runner_read_back),
}


def measure(name: str, compiled: bool, args, size: dict, flops_per_token: float, limit: float, log) -> dict:
    """One run of one tool: its row of the table."""
    tool = TOOLS[name]
    scratch = Path(tempfile.mkdtemp(prefix=f"versus-{name}-"))
    cmd = tool.command(args.python, size, args.iters, args.eval_interval, args.eval_iters, args.device, compiled,
                       str(scratch))
    log.write(f"\n== {name}, compile {compiled}: {' '.join(cmd)}\n")
    timed = run_timed(cmd, tool.folder(args), limit, log)
    steps, evals = progress(timed, tool.step_pattern, tool.eval_pattern)
    peak, evals = tool.read_back(timed, scratch, evals)
    shutil.rmtree(scratch, ignore_errors=True)
    ms = ms_per_step(steps, args.eval_interval)
    tokens = size["batch_size"] * size["block_size"] / (ms / 1e3) if ms else None
    peak_flops = args.peak_tflops * 1e12 if args.peak_tflops else None
    mfu = 100 * tokens * flops_per_token / peak_flops if tokens and peak_flops else None
    return dict(tool=name, compiled=compiled, ms=ms, tokens=tokens, mfu=mfu, peak_mb=peak,
                last_step=evals[-1][0] if evals else None, val=evals[-1][2] if evals else None,
                to_target=next((t for _, t, val in evals if val <= args.target), None), wall=timed.wall,
                exit=timed.returncode, cut_short=timed.cut_short)


# -- the table ----------------------------------------------------------------------------------------------

def _fmt(value, spec: str) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def markdown(rows: list[dict], args, size: dict, machine: str) -> str:
    lines = ["# The lecture's GPT: this project's runner against nanoGPT's train.py\n",
             f"{machine}. `python bench/versus_nanogpt.py run {' '.join(args.argv)}`: {args.iters} steps, batch "
             f"{size['batch_size']}, context {size['block_size']}, {size['n_layer']} layers, {size['n_head']} heads, "
             f"n_embd {size['n_embd']}, dropout {size['dropout']}; nanoGPT's schedule for both (lr 1e-3, 100 warm-up "
             f"steps, cosine to 1e-4, clip 1.0, weight decay 0.1), an evaluation every {args.eval_interval} steps "
             f"({args.eval_iters} batches a split). "
             + (f"MFU against {args.peak_tflops:.0f} TFLOP/s ({args.peak_from}).\n" if args.peak_tflops
                else "No MFU: no GPU peak to divide by.\n"),
             "| tool | torch.compile | ms/step | tokens/s | MFU % | peak MB | last eval step | val at end | "
             f"s to val {args.target} | wall s | exit |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['tool']} | {'yes' if r['compiled'] else 'no'} | {_fmt(r['ms'], '.2f')} | "
                     f"{_fmt(r['tokens'], ',.0f')} | {_fmt(r['mfu'], '.1f')} | {_fmt(r['peak_mb'], ',.0f')} | "
                     f"{_fmt(r['last_step'], 'd')} | {_fmt(r['val'], '.4f')} | "
                     f"{_fmt(r['to_target'], '.1f') or 'not reached'} | {r['wall']:.1f} | "
                     f"{'cut short' if r['cut_short'] else r['exit']} |")
    for compiled in (False, True):
        ours = [r["tokens"] for r in rows if r["tool"] == "runner" and r["compiled"] == compiled and r["tokens"]]
        theirs = [r["tokens"] for r in rows if r["tool"] == "nanoGPT" and r["compiled"] == compiled and r["tokens"]]
        if ours and theirs:
            lines.append(f"\nWith{'' if compiled else 'out'} torch.compile: the runner's tokens/s "
                         f"{statistics.median(ours) / statistics.median(theirs):.2f}x nanoGPT's (medians).")
    lines.append("\nStill different between the two: the models (nanoGPT's: GELU, no biases, the token table shared "
                 "with the output layer, fused attention; the lecture's `scaled`: ReLU, biases, separate tables, "
                 "PyTorch's fused attention with the `lecture` profile), AdamW's beta2 (0.99 there, 0.999 here), "
                 "weight decay (matrices only there, every parameter here), the warm-up's first step (lr/101 there, "
                 f"lr/100 here), and the last validation loss (a {args.eval_iters}-batch estimate there, the whole "
                 "split here).\n")
    return "\n".join(lines)


PEAK = ("from bench.machine import measure_ceiling; "
        "print(measure_ceiling({'device': 'cuda', 'n': 8192, 'repeats': 5, 'dtypes': ['bf16']})['gflops']['bf16'])")


def measured_peak(python: str) -> float | None:
    """TFLOP/s of the best of a few 8192^3 bf16 matrix products on the GPU (bench.machine.measure_ceiling), in a
    process of its own (this one never starts CUDA: its children are the ones measured); None if it failed."""
    try:
        done = subprocess.run([python, "-c", PEAK], cwd=ROOT, capture_output=True, text=True, timeout=120)
        return float(done.stdout.split()[-1]) / 1e3
    except (subprocess.TimeoutExpired, IndexError, ValueError):
        return None


def machine_name(device: str) -> str:
    """The GPU's name and driver from nvidia-smi (no CUDA in this process), or the CPU; and PyTorch's version."""
    import platform
    from importlib.metadata import version
    name = None
    if device.startswith("cuda") and shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True)
        if smi.returncode == 0 and smi.stdout.strip():
            gpu, driver = (part.strip() for part in smi.stdout.splitlines()[0].split(",", 1))
            name = f"{gpu}, driver {driver}"
    name = name or f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return f"{name}, PyTorch {version('torch')}"


def run(args) -> None:
    size = dict(TINY if args.tiny else LECTURE_GPT)
    if not (args.nanogpt_dir / "train.py").is_file():
        raise SystemExit(f"error: no nanoGPT in {args.nanogpt_dir}: run `python bench/versus_nanogpt.py prepare "
                         f"--nanogpt PATH` first")
    modes = {"both": [True, False], "on": [True], "off": [False]}[args.compile]  # each tool's best first
    start, rows = time.monotonic(), []
    machine = machine_name(args.device)
    args.peak_from = "given"
    if args.peak_tflops is None and args.device.startswith("cuda"):
        args.peak_tflops, args.peak_from = measured_peak(args.python), "measured: 8192^3 bf16 matrix products"
    signal.signal(signal.SIGTERM, lambda *_: STOP.update(asked=True))  # a time limit: end the run, write the table
    from common.io import write_text
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    flops = {tool: TOOLS[tool].flops_per_token(size) for tool in TOOLS} if args.peak_tflops else dict.fromkeys(TOOLS)
    with open(out.with_suffix(".log"), "w") as log:
        for compiled in modes:
            for tool in TOOLS:
                left = args.budget - (time.monotonic() - start)
                if left < 30 or STOP["asked"]:
                    print(f"{tool}, compile {compiled}: skipped, {left:.0f} s left of --budget {args.budget}")
                    continue
                print(f"{tool}, compile {compiled} (limit {min(args.run_limit, left):.0f} s) ...", flush=True)
                row = measure(tool, compiled, args, size, flops[tool], min(args.run_limit, left), log)
                rows.append(row)
                print("  " + ", ".join(f"{k} {v}" for k, v in row.items() if k not in ("tool", "compiled")),
                      flush=True)
                write_text(out, markdown(rows, args, size, machine))
    print(f"wrote {out} (and the runs' output in {out.with_suffix('.log')})")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="nanoGPT's scripts and data into --nanogpt-dir")
    prep.add_argument("--nanogpt", required=True, type=Path, help="a checkout of karpathy/nanoGPT, or its .git folder")
    prep.add_argument("--data", help="the corpus (default: as the runner finds it)")
    prep.add_argument("--nanogpt-dir", type=Path, default=ROOT / ".nanogpt")
    r = sub.add_parser("run", help="train both in turn and write the table")
    r.add_argument("--device", default="cuda")
    r.add_argument("--tiny", action="store_true", help="a tiny model (the rehearsal on a CPU)")
    r.add_argument("--iters", type=int, default=5000)
    r.add_argument("--eval-interval", type=int, default=250)
    r.add_argument("--eval-iters", type=int, default=200)
    r.add_argument("--compile", choices=["both", "on", "off"], default="both")
    r.add_argument("--target", type=float, default=1.48)
    r.add_argument("--peak-tflops", type=float, help="the GPU's bf16 peak for MFU (default: measured here, the "
                   "best of a few 8192^3 bf16 matrix products)")
    r.add_argument("--run-limit", type=float, default=240.0, help="seconds a run may take")
    r.add_argument("--budget", type=float, default=520.0, help="seconds for everything")
    r.add_argument("--python", default=sys.executable)
    r.add_argument("--nanogpt-dir", type=Path, default=ROOT / ".nanogpt")
    r.add_argument("--out", default=str(ROOT / ".nanogpt" / "versus-nanogpt.md"), help="the table (its runs' "
                   "output beside it, .log)")
    args = p.parse_args(argv)
    if args.command == "prepare":
        return prepare(args.nanogpt, args.nanogpt_dir, args.data)
    args.argv = argv[1:]
    # nanoGPT runs in its own folder: a relative path to python (.venv/bin/python) would not be found from there
    args.python = os.path.abspath(args.python) if os.sep in args.python else shutil.which(args.python) or args.python
    run(args)


if __name__ == "__main__":
    main()
