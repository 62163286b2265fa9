"""Many runs: one after another, or in worker processes; stop signals, the folder lock, progress.

`train_all` takes the runs of one command and trains each with `common.run.train_run`. A run (a
task) is (stage, seed) under the command's options, or (stage, seed, options) with its own settings
and folder (the points of a study). Ctrl-C or SIGTERM (`Stop`) asks every run to stop at the end of
its step with a checkpoint.
"""
from __future__ import annotations

import dataclasses
import fcntl
import os
import signal
import sys
import threading
import time
from pathlib import Path

from common.errors import LadderError
from common.run import (RunContext, RunOptions, Stage, check_replacing, check_settings, open_context, stage_configs,
                        train_run)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def training_tasks(ladders: dict[str, list[str]], order: list[str], chosen: list[str] | None,
                   seeds: list[int] | None, profile) -> list[tuple[str, int]]:
    """The (stage, seed) runs of a command: the chosen stages (in `order`, every stage's), else every rung of the
    ladders, each with --seeds or its ladder's seeds (a rung in two ladders: both ladders' seeds)."""
    wanted: dict[str, list[int]] = {}
    for ladder, rungs in ladders.items():
        for stage in rungs:
            wanted.setdefault(stage, []).extend(profile.seeds_for(ladder))
    names = [n for n in order if n in chosen] if chosen else list(wanted)
    return [(stage, seed) for stage in names
            for seed in (seeds or sorted(set(wanted.get(stage) or profile.seeds)))]


class Stop:
    """Ctrl-C or SIGTERM asks the current run to stop at the end of its step; a second one stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._previous: dict = {}

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self.handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            if handler is not None:
                signal.signal(sig, handler)
        self._previous = {}

    def handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signum = signum
        print(f"\n{signal.Signals(signum).name} received: stopping at the end of this step and saving a checkpoint "
              f"(press Ctrl-C again to quit at once)", file=sys.stderr, flush=True)

    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)  # 130 after Ctrl-C, 143 after SIGTERM

    def __call__(self) -> bool:
        return self.requested


def task_run(ctx: RunContext, task: tuple) -> tuple[RunContext, str, int]:
    """(context, stage, seed) of a task: (stage, seed), or (stage, seed, options) with its own options."""
    stage, seed, *options = task
    return (dataclasses.replace(ctx, options=options[0]) if options else ctx), stage, seed


def task_key(ctx: RunContext, task: tuple) -> tuple[str, int, str]:
    """What tells runs apart in progress reports: stage, seed and results folder."""
    run_ctx, stage, seed = task_run(ctx, task)
    return stage, seed, str(run_ctx.folder)


def train_all(ctx: RunContext, tasks: list[tuple], stop: Stop, jobs: int = 1, desc: str = "ladder") -> bool:
    """Train every task, in `jobs` parallel processes; returns False if interrupted."""
    if jobs > 1 and len(tasks) > 1:
        return train_parallel(ctx, tasks, stop, jobs, desc)
    with LadderProgress(ctx, tasks, desc) as progress:
        for task in tasks:
            run_ctx, stage, seed = task_run(ctx, task)
            if stop() or not train_run(run_ctx, stage, seed, stop, progress):
                return False
            progress.finished(*task_key(ctx, task))
    return True


def task_costs(ctx: RunContext, tasks: list[tuple]) -> dict[tuple[str, int, str], tuple[int, int]]:
    """(work, steps) of every task by task_key, each distinct (stage, settings) measured once: counting the
    work builds a model, and a study's seeds and a ladder's share them."""
    import json
    measured: dict[str, tuple[int, int]] = {}
    out = {}
    for task in tasks:
        run_ctx, stage, _ = task_run(ctx, task)
        what = json.dumps([stage, dict(run_ctx.options.overrides)], sort_keys=True, default=str)
        if what not in measured:
            steps = stage_configs(run_ctx.profile, run_ctx.stages[stage], run_ctx.options.overrides,
                                  run_ctx.dataset)[2].max_iters
            measured[what] = (run_cost(run_ctx, stage), steps)
        out[task_key(ctx, task)] = measured[what]
    return out


def run_cost(ctx: RunContext, stage: str) -> int:
    """Parameters x steps x tokens per step: the work of a run, to start the costliest first."""
    _, model_config, train_config = stage_configs(ctx.profile, ctx.stages[stage], ctx.options.overrides, ctx.dataset)
    params = sum(p.numel() for p in ctx.stages[stage].Model(model_config).parameters())
    return params * train_config.max_iters * train_config.batch_size * model_config.block_size


class LadderProgress:
    """The ladder's progress bar, by work (parameters x tokens) rather than steps, since a scaled step
    costs a hundred bigram steps: so its rate and time left mean something. A reused run counts as done
    at once, but not as work done at the current pace: the time left is the work left divided by the
    rate of the work trained by this command, between evaluations (so a resumed run's earlier steps,
    or a reused run, do not make the rest look faster than it is)."""

    def __init__(self, ctx: RunContext, tasks: list[tuple], desc: str, clock=time.monotonic, costs=None):
        from tqdm import tqdm
        self.folder = str(ctx.folder)
        costs = costs or task_costs(ctx, tasks)  # {task_key: (work, steps)}
        self.cost = {key: work for key, (work, _) in costs.items()}
        self.steps = {key: steps for key, (_, steps) in costs.items()}
        self.done: dict[tuple[str, int, str], float] = {}  # work done per run, trained now or before
        self.trained = 0.0  # work trained by this command, measured between a run's evaluations
        self.total = sum(self.cost.values()) or 1
        self.clock, self.start, self.status = clock, clock(), ""
        # {unit} carries our own [elapsed<left] and status: tqdm's {remaining} would take reused runs for pace
        self.bar = tqdm(total=100.0, desc=desc, dynamic_ncols=True, unit="",
                        disable=None if ctx.options.progress else True,  # None: only on a terminal, no redraws in a log
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {unit}")

    def seconds_left(self) -> float | None:
        """The work left at the pace of the work trained so far; None before any was."""
        elapsed = self.clock() - self.start
        if self.trained <= 0 or elapsed <= 0:
            return None
        return (self.total - sum(self.done.values())) / (self.trained / elapsed)

    def _show(self) -> None:
        from tqdm import tqdm
        self.bar.n = 100.0 * sum(self.done.values()) / self.total
        left = self.seconds_left()
        timing = f"[{tqdm.format_interval(self.clock() - self.start)}<" \
                 f"{tqdm.format_interval(left) if left is not None else '?'}]"
        self.bar.unit = f"{timing} {self.status}".strip()
        self.bar.refresh()

    def _advance(self, task: tuple[str, int, str], fraction: float) -> None:
        if task in self.done:  # work since this run's last evaluation (not what a resumed run did before)
            self.trained += self.cost[task] * max(0.0, fraction - self.done[task] / self.cost[task])
        self.done[task] = self.cost[task] * fraction

    def put(self, report: tuple) -> None:
        """A run's evaluation: (stage, seed, step, val_loss[, folder]), as train_run reports it."""
        stage, seed, step, val, *folder = report
        key = (stage, seed, folder[0] if folder else self.folder)
        self._advance(key, min(1.0, step / self.steps[key]))
        self.status = f"{stage} s{seed} step {step} val {val:.3f}"
        self._show()

    def finished(self, stage: str, seed: int, folder: str | None = None) -> None:
        """A run finished, or was reused (no evaluation reported: done, but no work at this pace)."""
        self._advance((stage, seed, folder or self.folder), 1.0)
        self._show()

    def __enter__(self) -> "LadderProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()


def default_jobs(device) -> int:
    """Runs at a time when --jobs is not given: one per CPU core on the CPU (small models gain more from
    parallel runs than from threads), one per GPU on CUDA when no GPU index was asked for, else 1."""
    import torch
    if device.type == "cpu":
        return os.cpu_count() or 1
    if device.type == "cuda" and device.index is None:
        return max(1, torch.cuda.device_count())
    return 1


def worker_device(device, worker: int, gpu_count: int) -> str | None:
    """The device of worker number `worker`: with several GPUs and no index asked for, worker i trains on
    GPU i (modulo their number); otherwise the device the command chose (None: the runner's choice)."""
    if device.type == "cuda" and device.index is None and gpu_count > 1:
        return f"cuda:{worker % gpu_count}"
    return None


def _start_pool(ctx: RunContext, tasks: list[tuple[str, int]], jobs: int, cancel, progress):
    """The worker pool and one future per task. Workers start with SIGINT and SIGTERM ignored (inherited
    through exec), so a Ctrl-C while they import cannot print a traceback; signals meanwhile wait, blocked."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    import torch

    threads = max(1, torch.get_num_threads() // jobs) if ctx.device.type == "cpu" else torch.get_num_threads()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        context = mp.get_context("spawn")
        gpus = torch.cuda.device_count() if ctx.device.type == "cuda" else 0
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init,
                                   initargs=(threads, cancel, os.getpid(), progress, context.Value("i", 0),
                                             ctx.device, gpus))
        futures = []
        for task in tasks:
            run_ctx, stage, seed = task_run(ctx, task)
            options = dataclasses.replace(run_ctx.options, progress=False)
            futures.append(pool.submit(_worker_train, options, dict(ctx.stages), dict(ctx.fingerprints), stage, seed))
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return pool, futures


def train_parallel(ctx: RunContext, tasks: list[tuple], stop: Stop, jobs: int, desc: str = "ladder") -> bool:
    """Independent runs in worker processes, each with its share of the CPU threads.

    The costliest runs start first so the slowest one does not finish alone at the end.
    The workers ignore SIGINT and SIGTERM: this process handles them and tells the workers, through
    an event, to save a checkpoint at the end of their step; a worker whose parent dies does the same.
    """
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    costs = task_costs(ctx, tasks)
    tasks = sorted(tasks, key=lambda task: costs[task_key(ctx, task)][0], reverse=True)
    context = mp.get_context("spawn")
    cancel, progress = context.Event(), context.Queue()  # workers send (stage, seed, step, val) per evaluation
    pool, futures = _start_pool(ctx, tasks, jobs, cancel, progress)
    ok, pending = True, set(futures)
    task_of = dict(zip(futures, tasks))
    bar = LadderProgress(ctx, tasks, f"{desc} ({jobs} at a time)", costs=costs)
    try:
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            while not progress.empty():
                bar.put(progress.get_nowait())
            for future in done:
                finished = not future.cancelled() and future.result()
                if finished:
                    bar.finished(*task_key(ctx, task_of[future]))
                ok = finished and ok
            if stop() and not cancel.is_set():
                cancel.set()  # running workers save a checkpoint at the end of their step
                for future in pending:
                    future.cancel()
    except BrokenProcessPool:
        cancel.set()
        raise LadderError("a worker process died (killed, or out of memory?): finished runs are kept; "
                          "run again with --resume, or with fewer --jobs") from None
    except BaseException:
        cancel.set()  # an error in one run (or a second Ctrl-C) stops the others at a checkpoint
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.__exit__()
    return ok and not stop()


class _WorkerStop:
    """A worker's stop request: the parent's event (it handles the signals), or the parent gone (kill -9)."""

    def __init__(self) -> None:
        self.requested = False
        self.event = None
        self.parent: int | None = None
        self.busy = threading.Lock()  # held while a run trains
        self.progress = None  # the parent's queue for progress reports
        self.device: str | None = None  # this worker's own GPU when there are several

    def watch_parent(self) -> None:
        """If the parent dies, stop the current run at a checkpoint, then exit (the pool cannot tell us)."""
        while os.getppid() == self.parent:
            time.sleep(0.5)
        self.requested = True
        with self.busy:
            os._exit(1)

    def __call__(self) -> bool:
        if not self.requested and ((self.event is not None and self.event.is_set())
                                   or (self.parent is not None and os.getppid() != self.parent)):
            self.requested = True
        return self.requested


_WORKER_STOP = _WorkerStop()
_WORKER_CONTEXTS: dict = {}  # one RunContext per worker process, built on its first run


def _worker_init(threads: int, event, parent: int, progress, counter, device, gpus: int) -> None:
    for sig in STOP_SIGNALS:  # the parent handles Ctrl-C and SIGTERM and sets the event
        signal.signal(sig, signal.SIG_IGN)
    import torch
    torch.set_num_threads(threads)
    with counter.get_lock():  # workers number themselves 0, 1, ... as they start
        worker, counter.value = counter.value, counter.value + 1
    _WORKER_STOP.device = worker_device(device, worker, gpus)
    _WORKER_STOP.event, _WORKER_STOP.parent, _WORKER_STOP.progress = event, parent, progress
    threading.Thread(target=_WORKER_STOP.watch_parent, name="watch-parent", daemon=True).start()


def _worker_train(options: RunOptions, stages: dict[str, Stage], fingerprints: dict[str, str], stage: str,
                  seed: int) -> bool:
    """One (stage, seed) run in a worker process; errors come back as the exception itself."""
    if _WORKER_STOP.device is not None:
        options = dataclasses.replace(options, device=_WORKER_STOP.device)
    if "ctx" not in _WORKER_CONTEXTS:  # the corpus and device once per worker; each task brings its own options
        _WORKER_CONTEXTS["ctx"] = open_context(options, stages, fingerprints)
    ctx = dataclasses.replace(_WORKER_CONTEXTS["ctx"], options=options)
    with _WORKER_STOP.busy:
        return not _WORKER_STOP() and train_run(ctx, stage, seed, _WORKER_STOP, _WORKER_STOP.progress)


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise LadderError(f"cannot write to {folder} ({exc.strerror}): choose a writable folder with --out") from None


class FolderLock:
    """An exclusive lock on a results folder, so two runners never write the same files at once."""

    def __init__(self, folder: Path):
        from common.io import LOCK_NAME
        self.path = folder / LOCK_NAME
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            raise LadderError(f"another runner ({holder}) is writing {self.path.parent}: wait for it to finish, "
                              f"or use a different --out") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()}")
        self.handle.flush()
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def check_runs(ctx: RunContext, tasks: list[tuple], device=None):
    """Every check before any training starts; returns the device (`device`, or the one --device names).

    Each run's settings by every rung's checks (trained or not) and against the corpus, no finished run of
    another experiment replaced without --force, the batch over the ranks, the memory."""
    from common.device import pick_device
    from common.distributed import check_batch
    from common.memory import check_fits
    from common.profiles import settings_for
    runs = [task_run(ctx, task) for task in tasks]
    for run, stage, _ in runs:  # --set dropout=1.5 is refused on the residual rung as on the dropout rung
        settings = settings_for(run.profile, stage, run.options.overrides)
        check_settings(ctx.stages, stage, settings, run.dataset.tokenizer.vocab_size)
    configs = [stage_configs(run.profile, ctx.stages[stage], run.options.overrides, run.dataset)
               for run, stage, _ in runs]
    check_replacing([(run, stage, seed, settings) for (run, stage, seed), (settings, _, _) in zip(runs, configs)])
    device = device or pick_device(ctx.options.device)  # fail early on a bad --device
    for (_, stage, _), (_, model_config, train_config) in zip(runs, configs):
        check_batch(train_config.batch_size, ctx.world, stage)
        check_fits(model_config, train_config.batch_size, device, stage)
    return device


def train_command(options: RunOptions, profile, stages, make_tasks, report, what: str, stop: Stop,
                  jobs: int | None = None, folder: Path | None = None, desc: str = "ladder") -> tuple[bool, Path, bool]:
    """The runs of one command: check every run's configuration and the device before any training, then
    train them under the folder's lock and write the report; (finished, folder, is this the main rank).

    make_tasks(options) gives the runs: (stage, seed) under `options`, or (stage, seed, options) with their
    own; `folder` (default: the profile's results folder) is the one locked; report(ctx) writes the result;
    `what` is said once at the start, `desc` names the progress bar."""
    from contextlib import nullcontext

    from common.corpus import corpus_id
    from common.data import load_dataset
    from common.device import device_name
    from common.distributed import finish, join
    from common.io import remove_stale_temporaries
    from common.run import RunContext, stage_fingerprints

    world, device = join(jobs, options.device)
    try:
        options = dataclasses.replace(options, corpus=corpus_id(options.data))  # another corpus: its own folder
        ctx = RunContext(options, profile, stages, load_dataset(options.data), None, stage_fingerprints(stages), world)
        tasks = make_tasks(options)
        device = check_runs(ctx, tasks, device)
        ctx = dataclasses.replace(ctx, device=device)
        folder = folder or ctx.folder
        if world.is_main:
            check_writable(folder)
        stop.install()
        with FolderLock(folder) if world.is_main else nullcontext():
            if world.is_main:
                remove_stale_temporaries(folder)  # left by a kill -9; we hold the lock: no one else writes here
            jobs = min(1 if world.active else jobs or default_jobs(device), len(tasks))
            print(f"training {what} on {device_name(device)}{f', {jobs} runs at a time' if jobs > 1 else ''}"
                  f"{f', {world.world_size} processes (DDP)' if world.active else ''} -> {folder}", flush=True)
            finished = train_all(ctx, tasks, stop, jobs=jobs, desc=desc)
            if finished and world.is_main:
                report(ctx)
        finish(world)  # every rank done (rank 0 has written) before any leaves the process group
    finally:
        finish()  # after an error: leave at once
    return finished, folder, world.is_main
