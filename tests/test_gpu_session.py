"""bench/gpu_session.sh, the prepared GPU commands (issues 31 and 32), rehearsed on the CPU with the smoke profile.

Device time is scarce: a script that broke since it was last run would waste it, so its steps, its
time budget and its archive are checked here, where they cost nothing.
"""
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("timeout") is None or shutil.which("bash") is None,
                                reason="needs bash and coreutils' timeout")


def session(tmp_path: Path, corpus_path: Path, **settings: str) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable, "DEVICE": "cpu",
           "PROFILE": "smoke", "LECTURE_PROFILE": "smoke", "SEEDS": "0", "JOBS": "1",
           "RESULTS": str(tmp_path / "results"), "OUT": str(out), "GPT_LADDER_DATA": str(corpus_path),
           **settings}
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu_session.sh")], capture_output=True, text=True,
                            env=env, timeout=300)
    return result, out


def test_rehearsal_trains_and_packs_each_results_folder_once(tmp_path, corpus_path):
    result, out = session(tmp_path, corpus_path, STEPS="info tests ladder lecture")
    assert result.returncode == 0, result.stderr
    log = (out / "session.log").read_text()
    assert "== info (limit 30s)" in log
    assert "== tests: exit 0" in log  # on the CPU its tests are skipped; on a GPU they run
    assert "== ladder: exit 0" in log and "== lecture: exit 0" in log, log[-2000:]
    with tarfile.open(out / "results.tar.gz") as archive:
        names = archive.getnames()
    assert any(name.endswith("smoke/ladder.csv") for name in names)
    assert any(name.endswith("smoke/runs/scaled/seed0/run.json") for name in names)
    assert not any(name.endswith(".pt") for name in names)  # checkpoints stay behind
    assert not any("/runs/gelu/" in name for name in names)  # the GPU ladder is the lecture's nine rungs
    assert len(names) == len(set(names))  # PROFILE and LECTURE_PROFILE are the same folder here
    assert "unfinished runs: none" in log and (out / "unfinished-runs.json").read_text().strip() == "[]"


def test_no_step_runs_past_the_total_budget(tmp_path, corpus_path):
    result, out = session(tmp_path, corpus_path, STEPS="info", TOTAL_S="25")
    assert result.returncode == 0, result.stderr
    assert "== info (limit 25s)" in (out / "session.log").read_text()  # its own 30 s capped

    result, out = session(tmp_path, corpus_path, STEPS="info ladder", TOTAL_S="19")
    assert result.returncode == 0, result.stderr
    log = (out / "session.log").read_text()
    assert "== info: skipped" in log and "== ladder: skipped" in log
    assert not (out / "results.tar.gz").exists()
    assert not (tmp_path / "results").exists()


def test_rehearsal_of_issue_32s_steps(tmp_path, corpus_path):
    """versus (against a stand-in for nanoGPT's train.py: tests/test_versus_nanogpt.py) writes its table into
    $OUT; modern trains the top modern rung with the --set given and packs that folder."""
    from test_versus_nanogpt import STAND_IN
    from bench.versus_nanogpt import NANOGPT_FILES
    nanogpt = tmp_path / "nanogpt"
    for name in NANOGPT_FILES:
        (nanogpt / name).parent.mkdir(parents=True, exist_ok=True)
        (nanogpt / name).write_text(STAND_IN if name == "train.py" else "# stand-in\n")
    result, out = session(tmp_path, corpus_path, STEPS="versus modern", VERSUS_COMPILE="off", VERSUS_ITERS="200",
                          VERSUS_ARGS=f"--tiny --eval-interval 100 --eval-iters 2 --nanogpt-dir {nanogpt}",
                          MODERN_SET="n_layer=1")
    assert result.returncode == 0, result.stderr
    log = (out / "session.log").read_text()
    assert "== versus: exit 0" in log and "== modern: exit 0" in log, log[-2000:]
    table = (out / "versus-nanogpt.md").read_text()
    assert "| nanoGPT | no |" in table and "| runner | no |" in table
    with tarfile.open(out / "results.tar.gz") as archive:
        names = archive.getnames()
    assert any("/smoke-" in name and name.endswith("runs/qk_norm/seed0/run.json") for name in names), names
    assert not any(name.endswith(".pt") for name in names)


def test_a_run_cut_short_leaves_its_curve_in_the_output(tmp_path, corpus_path):
    """A limit's SIGTERM leaves a checkpoint and no run.json, and the archive takes no checkpoints: what the
    run reached (step, curve, seconds) must still come back, in unfinished-runs.json."""
    import contextlib
    import io
    import json

    from bench.unfinished import main as unfinished
    from common.run import run_dir, train_run
    from conftest import smoke_context
    from test_interruption import _StopAfter
    ctx = smoke_context(tmp_path / "results", corpus_path, overrides={"eval_interval": 5, "max_iters": 40})
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert train_run(ctx, "bigram", 0, _StopAfter(12)) is False  # stopped, as a limit's SIGTERM stops it
        assert train_run(ctx, "mlp", 0, lambda: False)  # finished: not listed
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert unfinished([str(ctx.folder), "--out", str(tmp_path / "unfinished.json")]) == 0
    runs = json.loads((tmp_path / "unfinished.json").read_text())
    assert [(run["stage"], run["seed"], run["max_iters"], run["complete"]) for run in runs] == [("bigram", 0, 40, False)]
    assert 0 < runs[0]["step"] < 40 and runs[0]["curve"][-1]["step"] == 10 and runs[0]["curve"][-1]["seconds"] > 0
    assert "bigram seed 0: stopped at step" in printed.getvalue() and "unfinished runs: 1" in printed.getvalue()
    assert run_dir(ctx.folder, "bigram", 0).joinpath("checkpoint.pt").exists()  # read, never moved
