"""Regime studies: the table's deltas and intervals, divergence as a result, a study end to end on the
smoke profile (trained, reused, redrawn, interrupted and resumed), the ladder's pointers to studies,
and one `error:` line for every bad study name or value."""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import runner
from common.ladder import ladder_table
from common.studies import STUDIES, crossovers, ladder_pointers, study_row
from common.verdicts import BOTH_DIVERGED, CURED, DIVERGED, welch_interval

ROOT = Path(__file__).resolve().parent.parent


def record(stage: str, seed: int, val: float, best: float | None = None, diverged: bool = False,
           train: float | None = None) -> dict:
    return {"stage": stage, "seed": seed, "params": 10, "train_seconds": 1.0, "device_name": "cpu",
            "final": {"val_loss": val, "train_loss": val if train is None else train, "step": 100},
            "best": {"val_loss": val if best is None else best, "step": 50}, "diverged": diverged,
            "model_config": {"vocab_size": 65}}


def run_main(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = runner.main([*args, "--no-progress"])
        except SystemExit as exit:  # argparse's own errors (e.g. an unknown study name)
            code = exit.code
    return code, out.getvalue(), err.getvalue()


# -- the table -------------------------------------------------------------------------------------

def test_a_study_point_has_the_ladders_delta_interval_and_verdict():
    base = [record("layernorm", s, v) for s, v in enumerate([1.80, 1.81, 1.79])]
    rung = [record("dropout", s, v) for s, v in enumerate([1.70, 1.72, 1.69])]
    row = study_row(25_000, base, rung)
    low, high, p = welch_interval(1.80, 0.01, 3, pd.Series([1.70, 1.72, 1.69]).mean(),
                                  pd.Series([1.70, 1.72, 1.69]).std(), 3)
    assert row["delta"] == pytest.approx(1.70333 - 1.80, abs=1e-4)
    assert (row["ci_low"], row["ci_high"], row["p_value"]) == pytest.approx((low, high, p))
    assert row["verdict"] == "helped" and row["baseline_seeds"] == row["rung_seeds"] == 3
    hurt = study_row(0, base, [record("dropout", s, v) for s, v in enumerate([1.87, 1.88, 1.86])])
    assert hurt["verdict"] == "hurt" and hurt["delta"] > 0


def test_crossovers_are_where_helped_turns_into_not_helped():
    table = pd.DataFrame({"label": ["a", "b", "c", "d"],
                          "verdict": ["helped", "helped", "within noise", "hurt"]})
    assert crossovers(table) == [("b", "c")]
    assert crossovers(table.assign(verdict=["hurt", "hurt", "hurt", "hurt"])) == []


# -- divergence is a result ------------------------------------------------------------------------

def test_a_diverged_baseline_is_reported_as_such_not_as_noise():
    # issue 23: residual at lr 2e-2 ended at ~8.2 million over 3 seeds; Welch called the step "within noise"
    base = [record("residual", s, v, best=2.1) for s, v in enumerate([4.9e6, 8.1e6, 11.6e6])]
    rung = [record("layernorm", s, v) for s, v in enumerate([1.818, 1.821, 1.824])]
    row = study_row(2e-2, base, rung)
    assert row["verdict"] == "helped: the baseline diverged" and row["baseline_diverged"] == 3
    assert math.isnan(row["delta"])
    table = ladder_table(base + rung + [record("dropout", s, float("nan"), best=1.9, diverged=True) for s in range(3)],
                         ["residual", "layernorm", "dropout"], {n: {"adds": n} for n in ("residual", "layernorm",
                                                                                        "dropout")})
    assert list(table.verdict) == ["", CURED, DIVERGED]
    assert list(table.diverged) == [3, 0, 3]
    both = study_row(1, base, base)
    assert both["verdict"] == "diverged, as the baseline" == BOTH_DIVERGED.replace("the rung before", "the baseline")
    nan_seed = study_row(6, base, [record("residual", 0, float("nan"), best=2.2, diverged=True),
                                   record("residual", 1, 1.8), record("residual", 2, 1.9)])
    assert math.isnan(nan_seed["rung_mean"])  # no mean over the seeds that did not diverge


def test_a_run_still_on_its_way_down_is_not_diverged():
    from common.verdicts import run_diverged
    assert not run_diverged(record("bigram", 0, 4.18))  # above ln 65, but its best: still learning
    assert run_diverged(record("bigram", 0, 4.18, best=3.0))  # worse than the uniform guess and than its best
    assert run_diverged(record("bigram", 0, float("inf")))
    # overfitting is not divergence: layernorm on 25,000 training characters (cpu profile) memorised them
    assert not run_diverged(record("layernorm", 0, 4.210, best=2.466, train=0.527))


# -- end to end on the smoke profile ----------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory, corpus_path):
    out = tmp_path_factory.mktemp("studies")
    code, stdout, err = run_main("--study", "dropout", "--profile", "smoke", "--seeds", "0", "1",
                                 "--data", str(corpus_path), "--out", str(out))
    assert code == 0, err
    return out, stdout


def test_a_study_trains_every_point_and_writes_its_table_and_chart(smoke_study):
    out, stdout = smoke_study
    folder = out / "smoke" / "studies" / "dropout"
    table = pd.read_csv(folder / "study.csv")
    assert list(table.value) == list(STUDIES["dropout"].values)  # every value, in order
    assert (table.baseline_seeds == 2).all() and (table.rung_seeds == 2).all()
    assert table.label.iloc[-1].startswith("all (")  # train_chars 0: the whole training split
    assert (folder / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| train_chars |" in (folder / "study.md").read_text()
    runs = list(folder.glob("points/*/runs/*/seed*/run.json"))
    assert len(runs) == 4 * 2 * 2
    used = {json.loads(p.read_text())["train_chars_used"] for p in runs}
    assert {25_000, 100_000, 300_000} < used  # each point trained on its own amount of text
    assert "study dropout: dropout against layernorm over train_chars" in stdout


def test_a_study_reuses_its_runs_and_redraws_the_same_table(smoke_study, corpus_path):
    out, _ = smoke_study
    folder = out / "smoke" / "studies" / "dropout"
    before = (folder / "study.csv").read_text()
    code, stdout, err = run_main("--study", "dropout", "--profile", "smoke", "--seeds", "0", "1", "--jobs", "1",
                                 "--data", str(corpus_path), "--out", str(out))
    assert code == 0, err
    assert stdout.count("reusing saved result") == 16  # in this process (--jobs 1), where stdout is captured
    code, stdout, err = run_main("--study", "dropout", "--chart", "--profile", "smoke", "--seeds", "0", "1",
                                 "--out", str(out))
    assert code == 0, err
    assert (folder / "study.csv").read_text() == before


def test_the_ladder_points_to_a_study_where_a_hurt_rung_helps(tmp_path):
    folder = tmp_path / "cpu"
    study = folder / "studies" / "dropout"
    study.mkdir(parents=True)
    pd.DataFrame({"value": [25000, 0], "label": ["25,000", "all (1,003,854)"],
                  "verdict": ["helped", "hurt"]}).to_csv(study / "study.csv", index=False)
    table = pd.DataFrame({"stage": ["layernorm", "dropout"], "verdict": ["helped", "hurt"]})
    notes = ladder_pointers(folder, table)
    assert notes == {"dropout": "hurt here; helped at train_chars 25,000 (studies/dropout)"}
    assert ladder_pointers(folder, table.assign(verdict=["helped", "helped"])) == {}


def test_an_interrupted_study_resumes(tmp_path, corpus_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, str(ROOT / "runner.py"), "--sweep", "n_layer=1,2", "--stage", "residual",
            "--baseline-set", "residual=false", "--profile", "smoke", "--seeds", "0", "--jobs", "1",
            "--set", "max_iters=3000", "--set", "eval_interval=15", "--data", str(corpus_path),
            "--out", str(tmp_path), "--no-progress"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not list(tmp_path.glob("smoke-*/studies/*/points/*/runs/*/seed0/checkpoint.pt")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Resume with:" in err and "--resume" in err
    folder = next(tmp_path.glob("smoke-*/studies/*"))
    assert not (folder / "study.csv").exists()
    code, out, err = run_main(*args[2:-1], "--resume")
    assert code == 0, err
    assert "resuming from step" in out
    table = pd.read_csv(folder / "study.csv")
    assert len(table) == 2 and (table.baseline_seeds == 1).all() and (table.rung_seeds == 1).all()


# -- bad input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--study", "nope"], "invalid choice: 'nope'"),
    (["--sweep", "learning_rate=abc,1e-3", "--stage", "layernorm"], "learning_rate must be of type float"),
    (["--sweep", "learning_rate=1e-3", "--stage", "layernorm"], "at least two values"),
    (["--sweep", "learning_rate=1e-3,1e-3", "--stage", "layernorm"], "repeats a value"),
    (["--sweep", "n_layer=1,2"], "needs exactly one --stage"),
    (["--sweep", "nonsense=1,2", "--stage", "mlp"], "unknown hyperparameter 'nonsense'"),
    (["--sweep", "n_layer=1,2", "--stage", "bigram"], "bigram is the first rung"),
    (["--sweep", "n_layer=1,2", "--stage", "residual", "--baseline", "residual"], "compares residual with itself"),
    (["--sweep", "n_layer=1,2", "--stage", "residual", "--baseline-set", "n_layer=3"], "the setting being swept"),
    (["--study", "dropout", "--set", "train_chars=1000"], "changes the setting the study sweeps"),
    (["--study", "dropout", "--stage", "mlp"], "leave out --stage"),
    (["--stage", "mlp", "--baseline", "bigram"], "use them with --sweep"),
    (["--study", "dropout", "--sweep", "n_layer=1,2", "--stage", "residual"], "no --study"),
    (["--sweep", "train_chars=5,100", "--stage", "dropout"], "train_chars 5 is too small"),
    (["--sweep", "train_chars=-5,100", "--stage", "dropout"], "train_chars must be 0"),
    (["--sweep", "train_chars=100,99999999", "--stage", "dropout"], "more than the training split holds"),
])
def test_bad_study_input_gets_one_error_line(args, message, tmp_path, corpus_path):
    code, out, err = run_main(*args, "--profile", "smoke", "--data", str(corpus_path), "--out", str(tmp_path))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err
    assert not list(tmp_path.rglob("run.json"))  # nothing trained
