"""Nothing lost: Ctrl-C and SIGTERM save a checkpoint and say how to resume, --resume ends where an
uninterrupted run ends, kill -9 never leaves a broken file, two runners never share a folder, and a
loss that turns NaN ends the run as diverged (a recorded result) with the last good checkpoint kept.

The interruptions are real: runner.py in a subprocess, stopped with a real signal.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import runner
from common.checkpoint import load_checkpoint
from common.config import TrainConfig
from common.data import make_dataset
from common.io import atomic_path, is_temporary, write_json, write_text
from common.jobs import FolderLock, Stop
from common.run import RunContext, run_dir, train_run
from common.train import train
from conftest import smoke_context

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- helpers --------------------------------------------------------------------------------------

def start(*args: str, new_session: bool = False) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "runner.py"), *args, "--no-progress"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=new_session)


def wait_for(condition, proc: subprocess.Popen, timeout: float = 90.0, poll: float = 0.01) -> bool:
    """Poll until condition() holds; False if the process ended first. Fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return bool(condition())
        time.sleep(poll)
    proc.kill()
    pytest.fail(f"timed out waiting; stderr: {proc.communicate()[1]}")


def finish(proc: subprocess.Popen, timeout: float = 120.0) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"runner did not exit after the signal; stderr: {err}")
    return proc.returncode, out, err


def run_main(*args: str) -> tuple[int, str, str]:
    """runner.main in this process (for the runs that need no signal): (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = runner.main([*args, "--no-progress"] if "--no-progress" not in args else list(args))
    return code, out.getvalue(), err.getvalue()


def assert_all_results_valid(folder: Path) -> list[Path]:
    """Every result file under folder parses; temporary files are recognisable as such. Returns the latter."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image as mpimg

    temporaries = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if is_temporary(path):
            assert path.name.startswith(".") and path.name.endswith(".tmp")
            temporaries.append(path)
            continue
        if path.suffix == ".json":
            record = json.loads(path.read_text(encoding="utf-8"))
            assert isinstance(record, dict) and "final" in record, path
            # run.json is written last: the rest of its run is complete
            curve = pd.read_csv(path.parent / "curve.csv")
            assert curve.step.iloc[-1] == record["final"]["step"], path
            assert (path.parent / "sample.txt").read_text(encoding="utf-8")
        elif path.suffix == ".csv":
            table = pd.read_csv(path)
            assert len(table) > 0 and not table.isna().all(axis=1).any(), path
        elif path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_SIGNATURE, path
            assert mpimg.imread(path).ndim == 3, path
        elif path.suffix == ".pt":
            checkpoint = load_checkpoint(path)
            assert checkpoint["step"] >= 0 and checkpoint["curve"], path
        elif path.suffix in (".md", ".txt"):
            assert path.read_text(encoding="utf-8").strip(), path
    return temporaries


# -- atomic writes ---------------------------------------------------------------------------------

def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "run.json"
    write_json(path, {"old": 1})
    with pytest.raises(TypeError):
        write_json(path, {"new": object()})  # not serialisable
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text('{"half": ')
            raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_atomic_files_get_ordinary_permissions(tmp_path):
    write_text(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask


# -- the Stop handler, with real signals in this process --------------------------------------------

def test_first_signal_requests_a_stop_and_the_second_stops_at_once():
    stop = Stop()
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    stop.install()
    try:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler runs between bytecodes
            assert stop() and stop.exit_code() == 143
            assert "SIGTERM received" in err.getvalue()
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)
    finally:
        stop.uninstall()
    assert {sig: signal.getsignal(sig) for sig in before} == before  # the previous handlers are back


# -- interruption and resume, with real subprocesses and signals ---------------------------------------

def test_sigterm_saves_a_checkpoint_and_resume_ends_where_an_uninterrupted_run_ends(tmp_path, corpus_path):
    common = ["--profile", "smoke", "--seeds", "0", "--max-iters", "300", "--jobs", "1", "--data", str(corpus_path)]
    args = [*common, "--stage", "bigram", "dropout"]
    interrupted, reference = tmp_path / "interrupted", tmp_path / "reference"
    proc = start(*args, "--out", str(interrupted))
    dropout_ckpt = lambda: next(interrupted.glob("smoke-*/runs/dropout/seed0/checkpoint.pt"), None)  # noqa: E731
    assert wait_for(dropout_ckpt, proc), "the run ended before dropout started"
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc)

    assert code == 143, err
    assert "Traceback" not in err
    assert "SIGTERM received" in err and "stopped at step" in err
    resume_line = next(line for line in err.splitlines() if line.startswith("Resume with: "))
    folder = dropout_ckpt().parents[3]
    # the stage that finished before the interruption is kept; the interrupted one has a checkpoint
    assert (folder / "runs" / "bigram" / "seed0" / "run.json").is_file()
    assert not (folder / "runs" / "dropout" / "seed0" / "run.json").exists()
    checkpoint = load_checkpoint(dropout_ckpt(), stage="dropout", profile="smoke")
    assert not checkpoint["complete"] and 0 <= checkpoint["step"] < 300
    assert f"stopped at step {checkpoint['step']} of 300" in err

    # resume with the command it printed (here in-process, to save a start-up)
    command = shlex.split(resume_line.removeprefix("Resume with: "))
    assert command[:2] == ["python", "runner.py"] and "--resume" in command
    code, out, err = run_main(*command[2:])
    assert code == 0, err
    assert "bigram       seed 0: reusing saved result" in out
    assert f"dropout      seed 0: resuming from step {checkpoint['step']} of 300" in out

    code, _, err = run_main(*common, "--stage", "dropout", "--out", str(reference))
    assert code == 0, err
    ref_folder = next(reference.glob("smoke-*"))
    resumed = json.loads((folder / "runs" / "dropout" / "seed0" / "run.json").read_text())
    uninterrupted = json.loads((ref_folder / "runs" / "dropout" / "seed0" / "run.json").read_text())
    assert resumed["final"]["step"] == uninterrupted["final"]["step"] == 300
    assert resumed["final"]["val_loss"] == pytest.approx(uninterrupted["final"]["val_loss"], abs=1e-4)
    curve_a = pd.read_csv(folder / "runs" / "dropout" / "seed0" / "curve.csv")
    curve_b = pd.read_csv(ref_folder / "runs" / "dropout" / "seed0" / "curve.csv")
    assert list(curve_a.step) == list(curve_b.step)
    assert curve_a.val_loss.to_numpy() == pytest.approx(curve_b.val_loss.to_numpy(), abs=1e-4)
    assert_all_results_valid(folder)


def _session_processes(sid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid and "Z" not in (entry / "stat").read_text().split(")")[-1][:3]:
                    found.append(int(entry.name))
            except (OSError, ProcessLookupError):
                pass
    return found


def test_ctrl_c_with_parallel_jobs_stops_every_worker_at_a_checkpoint(tmp_path, corpus_path):
    proc = start("--profile", "smoke", "--stage", "mlp", "dropout", "--seeds", "0", "--max-iters", "20000",
                 "--jobs", "2", "--data", str(corpus_path), "--out", str(tmp_path), new_session=True)
    checkpoints = lambda: sorted(tmp_path.glob("smoke-*/runs/*/seed0/checkpoint.pt"))  # noqa: E731
    assert wait_for(lambda: len(checkpoints()) == 2, proc), "the runs ended before both started"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    code, out, err = finish(proc)

    assert code == 130, err
    assert "Traceback" not in err and "Error" not in err
    assert err.count("SIGINT received") == 1  # the workers leave the signal to the runner
    assert "stopped at step" in err and "Resume with: python runner.py" in err
    for path in checkpoints():
        checkpoint = load_checkpoint(path)
        assert not checkpoint["complete"] and checkpoint["step"] < 20000
    assert not list(tmp_path.glob("smoke-*/runs/*/seed0/run.json"))
    deadline = time.monotonic() + 10
    while _session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _session_processes(proc.pid) == []  # no worker left behind
    assert_all_results_valid(tmp_path)


def test_kill_9_at_any_moment_never_leaves_a_broken_file(tmp_path, corpus_path):
    args = ["--profile", "smoke", "--stage", "bigram", "mlp", "residual", "--seeds", "0", "--jobs", "1",
            "--data", str(corpus_path), "--out", str(tmp_path), "--resume"]
    folder = tmp_path / "smoke"
    temporary = lambda name: lambda: any(is_temporary(p) and name in p.name for p in folder.rglob(".*"))  # noqa: E731
    # 1: in the middle of writing the first checkpoint, if the poll catches it (else just after)
    # 2: while the chart is being written, at the end of the ladder
    for moment in (temporary("checkpoint.pt"), temporary("loss_ladder.png")):
        proc = start(*args)
        wait_for(moment, proc, poll=0.002)
        proc.kill()
        proc.communicate()
        assert_all_results_valid(tmp_path)
    # the next run (in-process: no signal needed) picks up what is missing, leaving no temporary file
    code, out, err = run_main(*args)
    assert code == 0, err
    assert out.count("reusing saved result") == 3  # all three finished before the second kill
    assert assert_all_results_valid(tmp_path) == []
    table = pd.read_csv(folder / "ladder.csv")
    assert list(table.stage[table.seeds > 0]) == ["bigram", "mlp", "residual"]
    assert set(table.verdict[table.seeds == 0]) == {"missing"}  # the rungs not trained between them


def make_context(out: Path, corpus_path: Path, *, resume: bool = False, force: bool = False,
                 overrides=None) -> RunContext:
    """What the runner hands a run: the smoke profile on the CPU, results under `out`."""
    return smoke_context(out, corpus_path, overrides=overrides, resume=resume, force=force)


class _StopAfter:
    """A stop request that arrives after `calls` checks."""

    def __init__(self, calls: int):
        self.calls = calls

    def __call__(self) -> bool:
        self.calls -= 1
        return self.calls < 0


def test_a_stop_during_an_evaluation_is_honoured(tmp_path, corpus_path):
    # with eval_interval=1 every step ends in an evaluation: the stop is seen right after it
    ctx = make_context(tmp_path, corpus_path, overrides={"eval_interval": 1, "max_iters": 40, "eval_iters": 1})
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert train_run(ctx, "bigram", 0, _StopAfter(5)) is False
    checkpoint = load_checkpoint(run_dir(ctx.folder, "bigram", 0) / "checkpoint.pt")
    assert 0 < checkpoint["step"] < 40 and not checkpoint["complete"]
    assert f"stopped at step {checkpoint['step']} of 40" in err.getvalue()


def test_resume_after_a_kill_between_the_last_checkpoint_and_the_record(tmp_path, corpus_path):
    ctx = make_context(tmp_path, corpus_path)
    with contextlib.redirect_stdout(io.StringIO()):
        assert train_run(ctx, "bigram", 0, lambda: False)
    folder = run_dir(ctx.folder, "bigram", 0)
    first = json.loads((folder / "run.json").read_text())
    sample = (folder / "sample.txt").read_text()
    for name in ("run.json", "curve.csv", "sample.txt"):  # as if killed right after the final checkpoint
        (folder / name).unlink()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert train_run(make_context(tmp_path, corpus_path, resume=True), "bigram", 0, lambda: False)
    assert "resuming from step 30 of 30" in out.getvalue()  # nothing left to train
    again = json.loads((folder / "run.json").read_text())
    assert again["final"] == first["final"]
    assert (folder / "sample.txt").read_text() == sample != ""


@pytest.mark.parametrize("force_again", [False, True], ids=["--resume", "--resume --force"])
def test_an_interrupted_force_retrain_leaves_no_old_result_and_resume_continues_it(tmp_path, corpus_path,
                                                                                     force_again):
    overrides = {"eval_interval": 5, "max_iters": 40}
    with contextlib.redirect_stdout(io.StringIO()):
        assert train_run(make_context(tmp_path / "reference", corpus_path, overrides=overrides), "bigram", 0,
                         lambda: False)
        ctx = make_context(tmp_path / "run", corpus_path, overrides=overrides)
        assert train_run(ctx, "bigram", 0, lambda: False)
    folder = run_dir(ctx.folder, "bigram", 0)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert train_run(make_context(tmp_path / "run", corpus_path, overrides=overrides, force=True), "bigram", 0,
                         _StopAfter(12)) is False
    step = load_checkpoint(folder / "checkpoint.pt")["step"]
    assert 0 < step < 40
    # the old result is gone with the retrain's start: no finished record beside the new run's checkpoint
    assert not (folder / "run.json").exists()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert train_run(make_context(tmp_path / "run", corpus_path, overrides=overrides, resume=True,
                                      force=force_again), "bigram", 0, lambda: False)
    assert f"resuming from step {step} of 40" in out.getvalue()
    reference = json.loads((run_dir(make_context(tmp_path / "reference", corpus_path, overrides=overrides).folder,
                                    "bigram", 0) / "run.json").read_text())
    assert json.loads((folder / "run.json").read_text())["final"]["val_loss"] == \
        pytest.approx(reference["final"]["val_loss"], abs=1e-4)


def test_a_resumed_auto_precision_run_goes_on_in_the_precision_it_started_in(tmp_path, corpus_path, monkeypatch):
    """precision=auto is resolved per machine, thread count and PyTorch version: a run resumed where the probe
    now chooses otherwise still trains its second half as its first, and says which in run.json."""
    import common.precision
    overrides = {"eval_interval": 5, "max_iters": 40}
    chosen = {"now": "fp32"}
    monkeypatch.setattr(common.precision, "resolve_precision", lambda requested, *a, **k:
                        chosen["now"] if requested == "auto" else requested)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert train_run(make_context(tmp_path / "run", corpus_path, overrides=overrides), "residual", 0,
                         _StopAfter(12)) is False
        chosen["now"] = "bf16"  # e.g. resumed with another thread count
        assert train_run(make_context(tmp_path / "run", corpus_path, overrides=overrides, resume=True), "residual",
                         0, lambda: False)
        assert train_run(make_context(tmp_path / "reference", corpus_path, overrides={**overrides,
                                      "precision": "fp32"}), "residual", 0, lambda: False)
    ctx = make_context(tmp_path / "run", corpus_path, overrides=overrides)
    resumed = json.loads((run_dir(ctx.folder, "residual", 0) / "run.json").read_text())
    reference = json.loads((run_dir(make_context(tmp_path / "reference", corpus_path, overrides={
        **overrides, "precision": "fp32"}).folder, "residual", 0) / "run.json").read_text())
    assert resumed["precision"] == resumed["train_config"]["precision"] == "fp32"
    assert resumed["final"]["val_loss"] == reference["final"]["val_loss"]


def test_force_resume_finishes_a_forced_run_stopped_between_its_last_checkpoint_and_its_record(tmp_path, corpus_path):
    overrides = {"eval_interval": 5, "max_iters": 20}
    with contextlib.redirect_stdout(io.StringIO()):
        assert train_run(make_context(tmp_path, corpus_path, overrides=overrides, force=True), "bigram", 0,
                         lambda: False)
    folder = run_dir(make_context(tmp_path, corpus_path, overrides=overrides).folder, "bigram", 0)
    (folder / "run.json").unlink()  # as if killed right after the final checkpoint
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert train_run(make_context(tmp_path, corpus_path, overrides=overrides, force=True, resume=True), "bigram",
                         0, lambda: False)
    assert "resuming from step 20 of 20" in out.getvalue() and (folder / "run.json").is_file()


@pytest.mark.parametrize("left", ["a finished run", "another experiment's stopped run", "another device's stopped run"])
def test_force_resume_starts_over_from_what_it_cannot_continue(tmp_path, corpus_path, left):
    """--force --resume (what make all-stages ARGS=--force passes) retrains a finished run, and starts over, without
    an error, from a stopped run of another experiment or device."""
    overrides = {"eval_interval": 5, "max_iters": 20}
    stop = (lambda: False) if left == "a finished run" else _StopAfter(7)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        train_run(make_context(tmp_path, corpus_path, overrides=overrides), "bigram", 0, stop)
    path = run_dir(make_context(tmp_path, corpus_path, overrides=overrides).folder, "bigram", 0) / "checkpoint.pt"
    if left != "a finished run":
        checkpoint = torch.load(path, weights_only=True)
        checkpoint.update(key="0" * 16) if left == "another experiment's stopped run" else \
            checkpoint.update(device_type="cuda")
        torch.save(checkpoint, path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert train_run(make_context(tmp_path, corpus_path, overrides=overrides, force=True, resume=True), "bigram",
                         0, lambda: False)
    assert "resuming" not in out.getvalue() and "bigram       seed 0: val" in out.getvalue()
    assert load_checkpoint(path)["complete"] and (path.parent / "run.json").is_file()


def test_the_resume_command_of_a_forced_command_keeps_force_and_says_what_it_retrains():
    assert runner.resume_command(["--stage", "bigram"]) == "python runner.py --stage bigram --resume"
    assert runner.resume_command(["--stage", "bigram", "--force"]) == \
        "python runner.py --stage bigram --force --resume  # --force: runs finished above train again"


# -- two runners, one folder -----------------------------------------------------------------------

def test_a_second_runner_on_the_same_folder_is_refused(tmp_path, corpus_path):
    folder = tmp_path / "smoke"
    (folder / "runs" / "bigram" / "seed0").mkdir(parents=True)
    (folder / "runs" / "bigram" / "seed0" / "run.json").write_text("{}")
    (folder / "ladder.csv").write_text("stage\nbigram\n")
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with FolderLock(folder):  # another runner at work
        proc = start("--profile", "smoke", "--stage", "bigram", "--seeds", "0", "--data", str(corpus_path),
                     "--out", str(tmp_path))
        code, out, err = finish(proc)
        assert code == 2, err
        assert err.strip().splitlines() == [
            f"error: another runner (pid {os.getpid()}) is writing {folder}: wait for it to finish, "
            f"or use a different --out"]
        code, _, err = run_main("--chart", "--profile", "smoke", "--data", str(corpus_path), "--out", str(tmp_path))
        assert code == 2 and "another runner" in err  # redrawing the chart waits its turn too
    after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".runner.lock"}
    assert after == before  # nothing written by the refused runners
    with FolderLock(folder):  # released: free again
        pass


# -- numerical trouble -----------------------------------------------------------------------------

class _Poisoned(nn.Module):
    """A tiny model honouring the stage contract whose loss turns NaN after `after` training steps."""

    def __init__(self, vocab_size: int, after: int, value: float = float("nan")):
        super().__init__()
        self.config = type("Config", (), {"block_size": 4})()
        self.logits = nn.Embedding(vocab_size, vocab_size)
        self.after, self.value, self.steps = after, value, 0

    def forward(self, idx, targets=None):
        logits = self.logits(idx)
        loss = None
        if targets is not None:
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
            if self.training:
                self.steps += 1
            if self.steps > self.after:
                loss = loss * self.value
        return logits, loss


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_loss_that_becomes_nan_or_infinite_ends_the_run_as_diverged(value):
    dataset = make_dataset("to be, or not to be: that is the question. " * 20)
    model = _Poisoned(dataset.tokenizer.vocab_size, after=13, value=value)
    cfg = TrainConfig(batch_size=4, max_iters=50, learning_rate=1e-2, eval_interval=10, eval_iters=2)
    saved = []
    result = train(model, dataset, cfg, name="poisoned s0", progress=False,
                   on_eval=lambda state, m, opt: saved.append(state.step))
    assert result.diverged and not result.stopped
    assert result.state.step == 20 and not math.isfinite(result.final["val_loss"])  # ended at that evaluation
    assert saved == [0, 10]  # the last good state was handed over; the bad one was not


def test_runner_records_a_diverged_run_and_keeps_the_last_good_checkpoint(tmp_path, corpus_path):
    code, out, err = run_main("--profile", "smoke", "--stage", "residual", "--seeds", "0", "--set",
                              "learning_rate=1e30", "--data", str(corpus_path), "--out", str(tmp_path))
    assert code == 0, err  # a result, not an error
    assert "residual seed 0: diverged" in err and "at step 15" in err and "learning rate" in err
    path = next(tmp_path.glob("smoke-*/runs/residual/seed0/checkpoint.pt"))
    checkpoint = load_checkpoint(path, stage="residual", profile="smoke")
    assert checkpoint["step"] == 0 and not checkpoint["complete"]
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values())
    record = json.loads(path.with_name("run.json").read_text())
    assert record["diverged"] is True and record["final"]["step"] == 15
    assert "diverged" in path.with_name("sample.txt").read_text()
    code, out, err = run_main("--profile", "smoke", "--stage", "residual", "--seeds", "0", "--set",
                              "learning_rate=1e30", "--data", str(corpus_path), "--out", str(tmp_path))
    assert code == 0 and "reusing saved result" in out  # the diverged run is a finished result


def test_a_stop_after_divergence_keeps_the_last_good_checkpoint(tmp_path, corpus_path):
    # stopped between evaluations after the weights blew up: the step-0 checkpoint must survive
    ctx = make_context(tmp_path, corpus_path, overrides={"learning_rate": 1e30})
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        # the stop is asked after every step: the 7th answer is yes, so the run stops at step 7
        assert train_run(ctx, "residual", 0, _StopAfter(6)) is False
    assert "the weights are no longer finite at step 7; keeping the checkpoint from step 0" in err.getvalue()
    checkpoint = load_checkpoint(run_dir(ctx.folder, "residual", 0) / "checkpoint.pt")
    assert checkpoint["step"] == 0
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values())
