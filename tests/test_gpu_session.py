"""bench/gpu_session.sh, issue 14's prepared GPU command, rehearsed on the CPU with the smoke profile.

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
    result, out = session(tmp_path, corpus_path, STEPS="info ladder lecture")
    assert result.returncode == 0, result.stderr
    log = (out / "session.log").read_text()
    assert "== info (limit 30s)" in log
    assert "== ladder: exit 0" in log and "== lecture: exit 0" in log, log[-2000:]
    with tarfile.open(out / "results.tar.gz") as archive:
        names = archive.getnames()
    assert any(name.endswith("smoke/ladder.csv") for name in names)
    assert any(name.endswith("smoke/runs/scaled/seed0/run.json") for name in names)
    assert not any(name.endswith(".pt") for name in names)  # checkpoints stay behind
    assert not any("/runs/gelu/" in name for name in names)  # the GPU ladder is the lecture's nine rungs
    assert len(names) == len(set(names))  # PROFILE and LECTURE_PROFILE are the same folder here


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
