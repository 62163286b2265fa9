"""Running the benchmark's tasks: each in a fresh process (or inline), its time on stderr and a failure
kept as the row's error; the ceiling first, then every row, the rows compared side by side in alternating
rounds, then the training runs."""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import traceback
from typing import Any

from bench.machine import measure_ceiling
from bench.measure import measure_steps, measure_training
from bench.plan import NANOGPT_RECIPE, QUICK_RECIPE, QUICK_TARGET, REFERENCES, split_row


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


class Executor:
    """Runs each task in a fresh child process forked from a server that has imported torch."""

    def __init__(self, inline: bool = False):
        self.inline = inline
        self.context = None
        if not inline:
            import multiprocessing as mp

            self.context = mp.get_context("forkserver")
            # The server imports the command line (bench/bench.py, the children's __main__, and with it
            # this module) and torch once; each child is then a cheap fork of it that has run no torch
            # operation and started no threads.
            # torch._dynamo is imported lazily by the first AdamW step (about 1.5 s, sympy included):
            # preloaded here so that it is not counted in the first row's time or memory.
            self.context.set_forkserver_preload(["__main__", "torch", "torch._dynamo", "common.train", "stages"])

    def __call__(self, task: dict[str, Any]) -> dict[str, Any]:
        if self.inline:
            return run_task(task)
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=1, mp_context=self.context) as pool:
            return pool.submit(run_task, task).result()


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
