#!/usr/bin/env python3
"""GPT Ladder's command line: train the stages, tabulate and chart the loss ladder, sample text.

    python runner.py                       # the whole ladder under the default profile
    python runner.py --stage residual      # one stage (several: --stage mlp residual)
    python runner.py --list                # the stages, what each adds, parameter counts
    python runner.py --sample --stage residual --prompt "ROMEO:"
    python runner.py --chart               # redraw table and chart from saved results
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import fcntl
import hashlib
import json
import os
import platform
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from common.errors import LadderError  # noqa: E402  (light imports first: --help stays fast)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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


def code_fingerprint() -> str:
    """A hash of the code that decides a run's numbers, ignoring comments and docstrings."""
    files = sorted((ROOT / "stages").glob("*.py")) + [ROOT / "common" / n for n in ("train.py", "data.py", "config.py")]
    digest = hashlib.sha256()
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                    and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        digest.update(path.name.encode() + ast.dump(tree).encode())
    return digest.hexdigest()[:16]


class _Parser(argparse.ArgumentParser):
    """Command-line mistakes get one line saying what is wrong and where to look, and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see python runner.py --help)\n")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be non-negative integers, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seeds must be non-negative integers, got {value}")
    return value


def build_parser(stage_names: list[str], profile_names: list[str]) -> argparse.ArgumentParser:
    p = _Parser(
        prog="runner.py", description="Train the GPT Ladder stages and draw the loss ladder.",
        epilog="The verdict rule and the profiles are described in README.md.")
    what = p.add_argument_group("what to do (default: train)")
    what.add_argument("--stage", nargs="+", choices=stage_names, metavar="STAGE",
                      help=f"stage(s) to train or sample, in any order; one of: {', '.join(stage_names)}")
    what.add_argument("--all", action="store_true", help="train the whole ladder in order (the default when no --stage)")
    what.add_argument("--list", action="store_true", help="list the stages: name, what it adds, parameters under the profile")
    what.add_argument("--sample", action="store_true", help="print text from a trained stage's checkpoint (no training)")
    what.add_argument("--chart", "--report", dest="chart", action="store_true",
                      help="redraw ladder.csv/.md, loss_ladder.png and samples.md from saved results (no training)")
    how = p.add_argument_group("how to train")
    how.add_argument("--profile", choices=profile_names,
                     help="named hyperparameters (default: gpu when CUDA is available, else cpu)")
    how.add_argument("--seeds", nargs="+", type=_seed, metavar="N",
                     help="one or more non-negative seeds per stage (default: the profile's)")
    how.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto (default: auto, CUDA then MPS then CPU)")
    how.add_argument("--max-iters", type=int, help="override the number of training steps of every stage")
    how.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                     help="override any hyperparameter, e.g. --set learning_rate=3e-4 --set n_layer=2 (repeatable)")
    how.add_argument("--jobs", type=int,
                     help="independent runs trained in parallel processes, sharing the CPU threads "
                          "(default: one per CPU core on the CPU, where small models gain more from parallel "
                          "runs than from threads; 1 on a GPU)")
    how.add_argument("--force", action="store_true", help="retrain even when a matching saved result exists")
    how.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    how.add_argument("--data", help="path to the corpus text file (default: $GPT_LADDER_DATA, the cache, or download)")
    how.add_argument("--out", default=str(ROOT / "results"), help="results folder (default: results/)")
    how.add_argument("--no-progress", action="store_true", help="no progress bars")
    smp = p.add_argument_group("sampling (with --sample)")
    smp.add_argument("--tokens", type=int, default=500, help="characters to generate (default 500)")
    smp.add_argument("--temperature", type=float, default=1.0, help="softmax temperature, > 0 (default 1.0)")
    smp.add_argument("--top-k", type=int, help="sample only from the k most likely characters")
    smp.add_argument("--prompt", default="", help="text to start from (default: a newline)")
    return p


class Runner:
    def __init__(self, args, stages, profile, overrides, device_request):
        self.args = args
        self.stages = stages  # name -> stage module, in ladder order
        self.profile = profile
        self.overrides = overrides
        self.device_request = device_request
        suffix = "" if not overrides else "-" + hashlib.sha256(
            json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]
        self.folder = Path(args.out) / f"{profile.name}{suffix}"
        self._dataset = None
        self._device = None

    # -- lazily loaded pieces ---------------------------------------------------------------
    @property
    def device(self):
        if self._device is None:
            from common.device import pick_device
            self._device = pick_device(self.device_request)
        return self._device

    @property
    def dataset(self):
        if self._dataset is None:
            from common.data import load_dataset
            self._dataset = load_dataset(self.args.data)
        return self._dataset

    def configs(self, stage: str):
        from common.data import check_block_size
        from common.profiles import make_configs, settings_for
        settings = settings_for(self.profile, stage, self.overrides)
        model_config, train_config = make_configs(self.stages[stage].Config, settings, self.dataset.tokenizer.vocab_size)
        check_block_size(self.dataset, model_config.block_size)
        return settings, model_config, train_config

    def run_dir(self, stage: str, seed: int) -> Path:
        return self.folder / "runs" / stage / f"seed{seed}"

    # -- training ---------------------------------------------------------------------------
    def train_all(self, names: list[str], seeds: list[int], stop: Stop, jobs: int = 1) -> bool:
        """Train every (stage, seed), in `jobs` parallel processes; returns False if interrupted."""
        fingerprint = code_fingerprint()
        tasks = [(stage, seed) for stage in names for seed in seeds]
        if jobs <= 1 or len(tasks) <= 1:
            for stage, seed in tasks:
                if stop() or not self.train_one(stage, seed, fingerprint, stop):
                    return False
            return True
        return self.train_parallel(tasks, fingerprint, stop, jobs)

    def train_parallel(self, tasks: list[tuple[str, int]], fingerprint: str, stop: Stop, jobs: int) -> bool:
        """Independent runs in worker processes, each with its share of the CPU threads.

        The costliest runs start first so the slowest one does not finish alone at the end.
        The workers ignore SIGINT and SIGTERM: this process handles them and tells the workers, through
        an event, to save a checkpoint at the end of their step; a worker whose parent dies does the same.
        """
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        import torch

        def cost(task):
            settings, model_config, train_config = self.configs(task[0])
            params = sum(p.numel() for p in self.stages[task[0]].Model(model_config).parameters())
            return params * train_config.max_iters * train_config.batch_size * model_config.block_size

        tasks = sorted(tasks, key=cost, reverse=True)
        total_steps = sum(self.configs(stage)[2].max_iters for stage, _ in tasks)
        threads = max(1, torch.get_num_threads() // jobs) if self.device.type == "cpu" else torch.get_num_threads()
        options = {k: v for k, v in vars(self.args).items()}
        options["no_progress"] = True
        context = mp.get_context("spawn")
        cancel = context.Event()
        progress = context.Queue()  # workers send (stage, seed, step, val_loss) after each evaluation
        # Start the workers with SIGINT and SIGTERM ignored (inherited through exec), so a Ctrl-C while
        # they import cannot print a traceback; signals to this process meanwhile wait, blocked.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
        try:
            pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init,
                                       initargs=(threads, cancel, os.getpid(), progress))
            futures = [pool.submit(_worker_train, options, self.profile.name, self.overrides, stage, seed,
                                   fingerprint) for stage, seed in tasks]
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        ok = True
        pending = set(futures)
        from tqdm import tqdm
        bar = tqdm(total=total_steps, desc=f"ladder ({jobs} at a time)", unit="step", dynamic_ncols=True,
                   disable=self.args.no_progress)
        reached: dict[tuple[str, int], int] = {}
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                while not progress.empty():
                    stage, seed, step, val = progress.get_nowait()
                    bar.update(step - reached.get((stage, seed), 0))
                    reached[(stage, seed)] = step
                    bar.set_postfix_str(f"{stage} s{seed} step {step} val {val:.3f}")
                for future in done:
                    ok = (not future.cancelled() and future.result()) and ok
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
            bar.close()
        return ok and not stop()

    def train_one(self, stage: str, seed: int, fingerprint: str, stop: Stop, progress=None) -> bool:
        """Train one (stage, seed) unless a matching result is saved; False if stopped.

        progress, if given, is a queue that receives (stage, seed, step, val_loss) after each evaluation.
        """
        import torch

        from common.checkpoint import load_checkpoint, save_checkpoint, train_state_from
        from common.memory import MemoryMeter
        from common.device import set_seed
        from common.generate import sample_text
        from common.io import read_json, write_json, write_text
        from common.train import train

        settings, model_config, train_config = self.configs(stage)
        tokenizer = self.dataset.tokenizer
        from common.device import autocast_dtype
        precision = str(autocast_dtype(self.device, train_config.precision) or torch.float32).removeprefix("torch.")
        key = hashlib.sha256(json.dumps({"stage": stage, "seed": seed, "settings": settings, "code": fingerprint,
                                         "precision": precision,
                                         "vocabulary": tokenizer.chars, "n_train": len(self.dataset.train)},
                                        sort_keys=True).encode()).hexdigest()[:16]
        folder = self.run_dir(stage, seed)
        record_path, ckpt_path = folder / "run.json", folder / "checkpoint.pt"
        if record_path.exists() and not self.args.force:
            try:
                old = read_json(record_path)
            except (OSError, ValueError):
                old = {}
            if isinstance(old, dict) and old.get("key") == key:
                print(f"{stage:<12} seed {seed}: reusing saved result (val {old['final']['val_loss']:.3f}; "
                      f"--force retrains)")
                return True

        state = None
        set_seed(seed)
        model = self.stages[stage].Model(model_config).to(self.device)
        if ckpt_path.exists() and not self.args.force:
            if self.args.resume:  # strict: a checkpoint that is not this run's is an error, not overwritten
                checkpoint = load_checkpoint(ckpt_path, stage=stage, profile=self.profile.name,
                                             vocabulary=tokenizer.chars)
                if checkpoint.get("key") != key:
                    print(f"{stage:<12} seed {seed}: the saved checkpoint is from other settings, data or code; "
                          f"starting over")
                else:
                    saved_on = checkpoint.get("device_type", self.device.type)
                    if saved_on != self.device.type:
                        raise LadderError(f"checkpoint {ckpt_path} was trained on {saved_on}, this run uses "
                                          f"{self.device.type}: resume it with --device {saved_on}, or retrain "
                                          f"with --force")
                    try:
                        model.load_state_dict(checkpoint["model"])
                    except RuntimeError:
                        raise LadderError(f"checkpoint {ckpt_path} does not fit the {stage} model: retrain with "
                                          f"--force") from None
                    state = train_state_from(checkpoint)
                    print(f"{stage:<12} seed {seed}: resuming from step {state.step} of {train_config.max_iters}")
            else:
                try:
                    checkpoint = load_checkpoint(ckpt_path)
                except LadderError:
                    checkpoint = {}
                if checkpoint.get("key") == key and not checkpoint.get("complete"):
                    print(f"{stage:<12} seed {seed}: an interrupted run stopped at step {checkpoint['step']}; "
                          f"starting over (pass --resume to continue it)")
        dataset = self.dataset.to(self.device)
        params = sum(p.numel() for p in model.parameters())
        memory = MemoryMeter(self.device)
        saved = {"step": None}

        def save(st, m) -> None:
            save_checkpoint(ckpt_path, model=m, state=st, stage=stage, profile=self.profile.name,
                            seed=seed, train_config=train_config, vocabulary=tokenizer.chars,
                            complete=st.step >= train_config.max_iters,
                            extra={"key": key, "device_type": self.device.type})
            saved["step"] = st.step

        def on_eval(st, m, opt) -> None:
            save(st, m)
            if progress is not None:
                progress.put((stage, seed, st.step, st.curve[-1]["val_loss"]))

        try:
            result = train(model, dataset, train_config, seed=seed, state=state, name=f"{stage} s{seed}",
                           progress=not self.args.no_progress, on_eval=on_eval, should_stop=stop)
        except LadderError as exc:  # the loss became NaN or infinite
            kept = (f"; the last good checkpoint (step {saved['step']}) is kept in {ckpt_path}"
                    if saved["step"] is not None else "")
            reason = str(exc).removeprefix(f"{stage} s{seed}: ")
            raise LadderError(f"stage {stage}, seed {seed}: {reason}{kept}") from None
        if result.stopped:
            if all(bool(torch.isfinite(p).all()) for p in model.parameters()):
                save(result.state, model)
            else:  # diverged since the last evaluation: keep the last good checkpoint
                print(f"{stage} seed {seed}: the weights are no longer finite at step {result.state.step}; "
                      f"keeping the checkpoint from step {saved['step']}", file=sys.stderr, flush=True)
            print(f"{stage} seed {seed}: stopped at step {saved['step']} of {train_config.max_iters}; "
                  f"checkpoint saved to {ckpt_path}", file=sys.stderr, flush=True)
            return False

        sample = sample_text(model, tokenizer, max_new_tokens=300, seed=seed)
        final, best = result.final, result.best_val
        peak_mb, _ = memory.read()  # this run's peak, not the worker process's earlier runs
        tokens_per_second = result.tokens_per_second or (  # a run finished before this session: its average
            result.state.step * train_config.batch_size * model_config.block_size / max(result.state.elapsed, 1e-9))
        record = {
            "stage": stage, "adds": self.stages[stage].ADDS, "profile": self.profile.name, "seed": seed, "key": key,
            "settings": settings, "overrides": self.overrides,
            "model_config": dataclasses.asdict(model_config), "train_config": dataclasses.asdict(train_config),
            "device": str(self.device), "device_name": device_name(self.device), "precision": precision,
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "platform": platform.platform()},
            "params": params, "train_seconds": round(result.state.elapsed, 2),
            "wall_seconds_this_session": round(result.wall_seconds, 2),
            "tokens_per_second": round(tokens_per_second, 1), "peak_memory_mb": round(peak_mb, 1),
            "final": final, "best": best, "code": fingerprint,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_text(folder / "curve.csv", "step,train_loss,val_loss,seconds\n" + "".join(
            f"{r['step']},{r['train_loss']:.5f},{r['val_loss']:.5f},{r['seconds']}\n" for r in result.state.curve))
        write_text(folder / "sample.txt", sample)
        write_json(record_path, record)  # last: its presence marks the run complete
        gap = final["val_loss"] - final["train_loss"]
        print(f"{stage:<12} seed {seed}: val {final['val_loss']:.3f} (best {best['val_loss']:.3f} at step "
              f"{best['step']}), train {final['train_loss']:.3f}, gap {gap:+.3f}, {params:,} params, "
              f"{result.state.elapsed:.1f} s, {tokens_per_second:,.0f} tok/s", flush=True)
        return True

    def has_results(self) -> bool:
        return any(self.folder.glob("runs/*/seed*/run.json"))

    # -- reporting --------------------------------------------------------------------------
    def report(self) -> None:
        import pandas as pd

        from common.chart import draw_ladder
        from common.io import read_json, write_text
        from common.ladder import ladder_table, to_markdown

        runs = []
        for path in sorted(self.folder.glob("runs/*/seed*/run.json")):
            try:
                record = read_json(path)
            except (OSError, ValueError):
                print(f"skipping unreadable {path}", file=sys.stderr)
                continue
            if record.get("stage") in self.stages:
                record["_dir"] = path.parent
                runs.append(record)
        if not runs:
            raise LadderError(f"no results in {self.folder}: train first (python runner.py --profile {self.profile.name})")
        info = {n: {"adds": m.ADDS, "lecture_val_loss": m.LECTURE_VAL_LOSS} for n, m in self.stages.items()}
        table = ladder_table(runs, list(self.stages), info)
        write_text(self.folder / "ladder.csv", table.to_csv(index=False, float_format="%.4f"))
        seconds = sum(r["train_seconds"] for r in runs)
        header = (f"# Loss ladder — profile `{self.profile.name}`\n\n{self.profile.description}. "
                  f"{len(runs)} runs on {runs[0]['device_name']}, {seconds / 60:.1f} min of training in all. "
                  f"Verdict rule: `helped` when the mean validation loss drops by more than two standard errors "
                  f"of the difference over seeds (see README).\n\n")
        write_text(self.folder / "ladder.md", header + to_markdown(table))
        curves = {}
        for stage in table.stage:
            frames = [pd.read_csv(r["_dir"] / "curve.csv") for r in runs if r["stage"] == stage]
            merged = pd.concat(frames).groupby("step").val_loss
            curves[stage] = pd.DataFrame({"val_loss": merged.mean(), "val_min": merged.min(),
                                          "val_max": merged.max()}).reset_index()
        draw_ladder(table, curves, self.folder / "loss_ladder.png",
                    title=f"GPT Ladder, profile '{self.profile.name}': {len(runs)} runs, "
                          f"{int(table.seeds.max())} seed(s) per stage, {runs[0]['device_name']}")
        lines = [f"# Samples — profile `{self.profile.name}`\n",
                 "300 characters from each stage (seed shown, temperature 1.0), bigram to scaled.\n"]
        for stage in table.stage:
            record = min((r for r in runs if r["stage"] == stage), key=lambda r: r["seed"])
            text = (record["_dir"] / "sample.txt").read_text(encoding="utf-8")
            lines.append(f"## {stage} (seed {record['seed']}, val loss {record['final']['val_loss']:.3f})\n\n"
                         f"```text\n{text.strip()}\n```\n")
        write_text(self.folder / "samples.md", "\n".join(lines))
        print(f"\n{to_markdown(table[['stage', 'params', 'seeds', 'val_loss_mean', 'val_loss_std', 'delta', 'verdict', 'gap']])}")
        print(f"wrote {self.folder}/ladder.csv, ladder.md, loss_ladder.png, samples.md")

    # -- listing and sampling ---------------------------------------------------------------
    def list_stages(self) -> None:
        from common.profiles import make_configs, settings_for
        vocab = self.dataset.tokenizer.vocab_size
        print(f"{'#':>2}  {'stage':<12} {'params':>11}  adds   (profile {self.profile.name})")
        for i, (name, module) in enumerate(self.stages.items(), 1):
            model_config, _ = make_configs(module.Config, settings_for(self.profile, name, self.overrides), vocab)
            params = sum(p.numel() for p in module.Model(model_config).parameters())
            print(f"{i:>2}  {name:<12} {params:>11,}  {module.ADDS}")

    def sample(self, stage: str, seed: int) -> None:
        from common.checkpoint import load_checkpoint
        from common.generate import sample_text

        path = self.run_dir(stage, seed) / "checkpoint.pt"
        if not path.exists():
            committed = (path.parent / "run.json").exists()  # results kept in git come without checkpoints
            raise LadderError(f"stage {stage!r} has no checkpoint for profile {self.profile.name!r}, seed {seed} "
                              f"(looked for {path}): train it first with "
                              f"python runner.py --stage {stage} --profile {self.profile.name} --seeds {seed}"
                              + (" --force (its saved result has no checkpoint)" if committed else ""))
        checkpoint = load_checkpoint(path, stage=stage, profile=self.profile.name)
        from common.data import CharTokenizer
        tokenizer = CharTokenizer(checkpoint["vocabulary"])
        module = self.stages[stage]
        try:
            model = module.Model(module.Config(**checkpoint["model_config"]))
            model.load_state_dict(checkpoint["model"])
        except (TypeError, ValueError, RuntimeError, LadderError):
            raise LadderError(f"checkpoint {path} does not fit the {stage} model of this code: retrain it with "
                              f"python runner.py --stage {stage} --profile {self.profile.name} --force") from None
        model.to(self.device)
        text = sample_text(model, tokenizer, max_new_tokens=self.args.tokens, prompt=self.args.prompt,
                           temperature=self.args.temperature, top_k=self.args.top_k, seed=seed)
        note = "" if checkpoint.get("complete") else f" (interrupted run, step {checkpoint['step']})"
        print(f"--- {stage}, profile {self.profile.name}, seed {seed}{note} ---", file=sys.stderr)
        print(text)


class _WorkerStop:
    """A worker's stop request: the parent's event (it handles the signals), or the parent gone (kill -9)."""

    def __init__(self) -> None:
        self.requested = False
        self.event = None
        self.parent: int | None = None
        self.busy = threading.Lock()  # held while a run trains
        self.progress = None  # the parent's queue for progress reports

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


def _worker_init(threads: int, event, parent: int, progress) -> None:
    for sig in STOP_SIGNALS:  # the parent handles Ctrl-C and SIGTERM and sets the event
        signal.signal(sig, signal.SIG_IGN)
    import torch
    torch.set_num_threads(threads)
    _WORKER_STOP.event, _WORKER_STOP.parent, _WORKER_STOP.progress = event, parent, progress
    threading.Thread(target=_WORKER_STOP.watch_parent, name="watch-parent", daemon=True).start()


def _worker_train(options: dict, profile_name: str, overrides: dict, stage: str, seed: int, fingerprint: str) -> bool:
    """One (stage, seed) run in a worker process; errors come back as the exception itself."""
    from common.profiles import get_profile
    from stages import STAGES

    runner = Runner(argparse.Namespace(**options), STAGES, get_profile(profile_name), overrides, options["device"])
    with _WORKER_STOP.busy:
        return not _WORKER_STOP() and runner.train_one(stage, seed, fingerprint, _WORKER_STOP, _WORKER_STOP.progress)


def device_name(device) -> str:
    import torch
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU, {os.cpu_count()} cores"


def resume_command(argv: list[str]) -> str:
    """The command that continues this one: the same arguments, with --resume (and without --force)."""
    argv = [a for a in argv if a not in ("--resume", "--force")]
    return "python runner.py " + shlex.join(argv + ["--resume"])


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
        self.path = folder / ".runner.lock"
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


def main(argv: list[str] | None = None) -> int:
    stop = Stop()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv, stop)
    except LadderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if stop.installed:  # a second Ctrl-C while training
            print(f"\ninterrupted at once: finished runs are kept, the current run keeps its checkpoint from its "
                  f"last evaluation.\nResume with: {resume_command(argv)}", file=sys.stderr)
        else:
            print("\ninterrupted", file=sys.stderr)
        return stop.exit_code()
    except OSError as exc:  # e.g. the disk filled up, or a folder became unwritable mid-run
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot write or read{where} ({exc.strerror or exc}): free some space or fix the "
              f"permissions, then run again with --resume", file=sys.stderr)
        return 2
    finally:
        stop.uninstall()


def _main(argv: list[str], stop: Stop) -> int:
    from common.profiles import PROFILES
    from stages import STAGE_NAMES, STAGES

    parser = build_parser(STAGE_NAMES, list(PROFILES))
    args = parser.parse_args(argv)
    import torch

    from common.profiles import get_profile, parse_overrides

    if args.profile is None:
        args.profile = "gpu" if torch.cuda.is_available() else "cpu"
        if not (args.list or args.sample or args.chart):
            print(f"no --profile given: using '{args.profile}' "
                  f"({'CUDA is available' if args.profile == 'gpu' else 'CUDA is not available'})")
    profile = get_profile(args.profile)
    overrides = parse_overrides(args.overrides, [m.Config for m in STAGES.values()])
    if args.max_iters is not None:
        if args.max_iters <= 0:
            raise LadderError(f"--max-iters must be positive, got {args.max_iters}")
        overrides["max_iters"] = args.max_iters
    seeds = list(args.seeds) if args.seeds else list(profile.seeds)
    if not seeds or any(s < 0 for s in seeds):
        raise LadderError(f"--seeds needs one or more non-negative integers, got {' '.join(map(str, seeds)) or 'none'}")
    seeds = list(dict.fromkeys(seeds))
    if args.jobs is not None and args.jobs < 1:
        raise LadderError(f"--jobs must be at least 1, got {args.jobs}")
    names = [n for n in STAGE_NAMES if n in (args.stage or STAGE_NAMES)] if not args.all else STAGE_NAMES
    runner = Runner(args, STAGES, profile, overrides, args.device)

    if args.list:
        runner.list_stages()
        return 0
    if args.sample:
        if not args.stage or len(args.stage) != 1:
            raise LadderError("--sample needs exactly one --stage, e.g. --sample --stage residual")
        if args.tokens < 0:
            raise LadderError(f"--tokens must not be negative, got {args.tokens}")
        runner.sample(args.stage[0], seeds[0])
        return 0
    if args.chart:
        if not runner.has_results():
            raise LadderError(f"no results in {runner.folder}: train first "
                              f"(python runner.py --profile {profile.name})")
        check_writable(runner.folder)
        with FolderLock(runner.folder):
            runner.report()
        return 0
    for name in names:  # check every configuration before any training starts
        runner.configs(name)
    runner.device  # noqa: B018  (fail early on a bad --device)
    check_writable(runner.folder)
    stop.install()
    with FolderLock(runner.folder):
        from common.io import remove_stale_temporaries
        remove_stale_temporaries(runner.folder)  # left by a kill -9; no one else writes here while we hold the lock
        jobs = args.jobs or (os.cpu_count() or 1 if runner.device.type == "cpu" else 1)
        jobs = min(jobs, len(names) * len(seeds))
        print(f"training {', '.join(names)} with seeds {seeds} on {device_name(runner.device)}"
              f"{f', {jobs} runs at a time' if jobs > 1 else ''} -> {runner.folder}", flush=True)
        finished = runner.train_all(names, seeds, stop, jobs=jobs)
        if finished:
            runner.report()
            return 0
    print(f"interrupted: finished runs are kept in {runner.folder}.\nResume with: {resume_command(argv)}",
          file=sys.stderr)
    return stop.exit_code()


if __name__ == "__main__":
    sys.exit(main())
