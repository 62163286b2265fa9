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
  does count, and so does a token table that is the lm_head too, tied, as nanoGPT's), plus 12 * T * sum(attention width) for the attention scores and the weighted sum
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

The settings benchmarked are data (`settings_plan` in `bench/plan.py`): on the CPU, every stage at the `cpu`
profile and `scaled` plus the reference at the nanoGPT recipe; on CUDA, every stage at the `gpu`
profile, and `scaled` plus the reference at the lecture's setting and at the nanoGPT recipe.

Where each part lives: this file is the command line; `bench/plan.py` the rows and settings
benchmarked; `bench/tasks.py` runs the tasks, each in its own process, in rounds;
`bench/measure.py` times a row's training step and the time to quality; `bench/machine.py` the
machine and its matmul ceiling; `bench/report.py` the Markdown report; `bench/goals.py` the
issue's goals and their verdicts.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path[:1] != [str(ROOT)]:  # first: Python puts bench/ first, where `bench` is this file, not the package
    sys.path.insert(0, str(ROOT))

# Only the standard library is imported at the top of bench/'s modules, because the child processes import
# this file, and with it them, again to find their task. (The parent imports torch through the stage
# registry, for the stage names, but never runs a torch operation: every measurement happens in a child.)
from bench.machine import cpu_info, default_threads, machine_description  # noqa: E402
from bench.plan import REFERENCES, settings_plan  # noqa: E402
from bench.report import build_report  # noqa: E402
from bench.tasks import Attempts, Executor, Options, run_ceiling, run_rows, run_task, run_training  # noqa: E402


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
