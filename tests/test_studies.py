"""Regime studies: the table's deltas and intervals, divergence as a result, a study end to end on the
smoke profile (trained, reused, redrawn, interrupted and resumed), the ladder's pointers to studies,
and one `error:` line for every bad study name or value."""
from __future__ import annotations

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

from common.ladder import ladder_table
from common.studies import STUDIES, crossovers, ladder_pointers, study_row
from common.verdicts import BOTH_DIVERGED, CURED, DIVERGED, welch_interval
from test_bad_input import assert_one_clear_line, run_main

ROOT = Path(__file__).resolve().parent.parent


def record(stage: str, seed: int, val: float, best: float | None = None, diverged: bool = False,
           train: float | None = None) -> dict:
    return {"stage": stage, "seed": seed, "params": 10, "train_seconds": 1.0, "device_name": "cpu",
            "final": {"val_loss": val, "train_loss": val if train is None else train, "step": 100},
            "best": {"val_loss": val if best is None else best, "step": 50}, "diverged": diverged,
            "model_config": {"vocab_size": 65}}


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


def test_a_crossover_needs_a_measured_verdict_on_both_sides():
    """issue 29: the residual study shaded a crossover between 4 layers (the baseline diverged) and 6 (both did)."""
    residual = pd.DataFrame({"label": ["1", "2", "4", "6"],
                             "verdict": ["helped", "helped", "helped: the baseline diverged", "diverged, as the baseline"]})
    assert crossovers(residual) == []
    layernorm = pd.DataFrame({"label": ["0.001", "0.003", "0.01", "0.02"],
                              "verdict": ["within noise", "hurt", "helped", "helped: the baseline diverged"]})
    assert crossovers(layernorm) == [("0.003", "0.01")]
    for other in ("hurt: diverged", "too few seeds", "missing", ""):
        assert crossovers(pd.DataFrame({"label": ["a", "b"], "verdict": ["helped", other]})) == []
        assert crossovers(pd.DataFrame({"label": ["a", "b"], "verdict": [other, "helped"]})) == []


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


def test_a_diverged_side_has_no_mean_in_any_table():
    """issue 29: the layernorm study's table showed its diverged baseline's mean, 4.09e+07."""
    base = [record("residual", s, v, best=4.6) for s, v in enumerate([5.0e6, 1.09e8, 8.2e6])]  # all finite
    rung = [record("layernorm", s, v) for s, v in enumerate([1.772, 1.770, 1.770])]
    row = study_row(2e-2, base, rung)
    assert math.isnan(row["baseline_mean"]) and math.isnan(row["baseline_std"]) and row["baseline_diverged"] == 3
    assert row["rung_mean"] == pytest.approx(1.7707, abs=1e-4)
    one = study_row(2e-2, base[:1] + [record("residual", s, 1.8) for s in (1, 2)], rung)  # one seed of three
    assert math.isnan(one["baseline_mean"]) and one["baseline_diverged"] == 1
    table = ladder_table(rung + [record("dropout", s, v, best=2.0) for s, v in enumerate([9e5, 1.8, 1.8])],
                         ["layernorm", "dropout"], {n: {"adds": n} for n in ("layernorm", "dropout")})
    assert math.isnan(table.val_loss_mean.iloc[1]) and math.isnan(table.train_loss_mean.iloc[1])
    assert table.diverged.iloc[1] == 1


def test_the_study_page_says_how_large_the_diverged_losses_were():
    from common.studies import divergence_note, study_markdown, study_table
    study = STUDIES["layernorm"]
    fine = [record("residual", s, 1.8 + s / 100) for s in range(3)]
    points = [(1e-2, fine, [record("layernorm", s, 1.75 + s / 100) for s in range(3)]),
              (2e-2, [record("residual", s, v, best=4.6) for s, v in enumerate([5.0e6, 1.09e8, float("nan")])],
               [record("layernorm", s, 1.77) for s in range(3)])]
    note = divergence_note(study, points)
    assert note.startswith("Diverged: at learning_rate 0.02, the baseline in 3 of 3 seeds (final validation losses "
                           "5.0e6, 1.1e8, NaN)")
    page = study_markdown(study_table(study, points), study, "", note)
    assert note in page and "e+07" not in page
    assert divergence_note(study, points[:1]) == ""


def test_a_run_still_on_its_way_down_is_not_diverged():
    from common.verdicts import run_diverged
    assert not run_diverged(record("bigram", 0, 4.18))  # above ln 65, but its best: still learning
    assert run_diverged(record("bigram", 0, 4.18, best=3.0))  # worse than the uniform guess and than its best
    assert run_diverged(record("bigram", 0, float("inf")))
    # a run of one step (--max-iters 1) ends within the evaluations' noise of its start: not diverged
    assert not run_diverged(record("bigram", 0, 4.185, best=4.180, train=4.19))
    assert run_diverged(record("bigram", 0, 4.29, best=4.18, train=4.3))  # a rise beyond that noise
    # overfitting is not divergence: layernorm on 25,000 training characters (cpu profile) memorised them
    assert not run_diverged(record("layernorm", 0, 4.210, best=2.466, train=0.527))


def test_every_committed_diverged_run_rose_far_past_the_margin():
    """The margin DIVERGED_RISE (0.1) changes no committed verdict: each committed run the heuristic calls diverged
    ended at least 1 nat above its best (or at NaN or infinity), and no run within the margin was called so."""
    from common.verdicts import DIVERGED_RISE, run_diverged
    records = [json.loads(p.read_text()) for p in (ROOT / "results").rglob("run.json")]
    assert len(records) > 200
    diverged = [r for r in records if run_diverged(r)]
    assert diverged  # the residual and layernorm studies have diverged sides
    for r in diverged:
        rise = r["final"]["val_loss"] - r["best"]["val_loss"]
        assert not math.isfinite(rise) or rise >= 1.0, (r["stage"], r["seed"], rise)
    for r in records:  # the old rule (any rise) calls the same runs diverged
        val, train, best = r["final"]["val_loss"], r["final"]["train_loss"], r["best"]["val_loss"]
        any_rise = r.get("diverged") or not (math.isfinite(val) and math.isfinite(train)) or (
            train > math.log(65) and val > best)
        assert bool(any_rise) == run_diverged(r)
    assert DIVERGED_RISE < 1.0


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


def drawn_texts(fig, monkeypatch) -> list:
    """The texts a figure draws (a tick label outside the axis's limits is made but not drawn)."""
    from matplotlib.text import Text
    drawn, draw = [], Text.draw

    def record(self, renderer):
        draw(self, renderer)
        if self.get_visible() and self.get_text().strip():
            drawn.append(self)

    monkeypatch.setattr(Text, "draw", record)
    fig.canvas.draw()
    monkeypatch.setattr(Text, "draw", draw)
    return drawn


def overlapping(fig, monkeypatch) -> list[tuple[str, str]]:
    """Pairs of drawn texts whose boxes overlap (by more than half a pixel each way)."""
    texts = drawn_texts(fig, monkeypatch)
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in dict.fromkeys(texts)]
    return [(a, b) for i, (a, box) in enumerate(boxes) for b, other in boxes[i + 1:]
            if min(box.x1, other.x1) - max(box.x0, other.x0) > 0.5 and min(box.y1, other.y1) - max(box.y0, other.y0) > 0.5]


def committed_study_figure(name: str):
    from common.chart import study_figure
    from common.profiles import get_profile
    from common.studies import study_note, study_runs, study_table, study_title
    study = STUDIES[name]
    points = study_runs(ROOT / "results" / "cpu" / "studies" / name, study)
    table = study_table(study, points)
    note = study_note(get_profile("cpu"), {}, [r for _, base, rung in points for r in base + rung])
    return table, study_figure(table, study_title(study, note), setting=study.setting, rung=study.rung,
                               against=study.against, crossovers=crossovers(table))


@pytest.mark.parametrize("name", list(STUDIES))
def test_no_two_labels_overlap_on_a_committed_studys_chart(name, monkeypatch):
    """issue 29: the residual study's right panel printed its two 'diverged' labels over each other at 6 layers."""
    import matplotlib.pyplot as plt
    table, fig = committed_study_figure(name)
    try:
        assert overlapping(fig, monkeypatch) == []
        texts = [t.get_text() for t in drawn_texts(fig, monkeypatch)]
        # a diverged point is marked as such, and never shaded as a crossover
        assert ("crossover" in texts) == bool(crossovers(table))
        diverged = (table.baseline_diverged > 0) | (table.rung_diverged > 0)
        assert sum("diverged" in t for t in texts) == 2 * int(diverged.sum())  # once in each panel
    finally:
        plt.close(fig)


@pytest.mark.parametrize("ladder", ["lecture", "modern"])
def test_no_two_labels_overlap_on_the_committed_ladder_chart(ladder, monkeypatch):
    import matplotlib.pyplot as plt

    from common.chart import ladder_figure
    from common.ladder import ladder_table, stage_info
    from common.results import read_results
    from common.run import Stage
    from stages import LADDERS, STAGES
    stages = {name: Stage.from_module(name, STAGES[name]) for name in LADDERS[ladder]}
    folder = ROOT / "results" / "cpu"
    read = read_results(folder, list(stages))
    table = ladder_table(read.runs, list(stages), stage_info(stages))
    fig = ladder_figure(table, read.curves, "the committed ladder", notes=ladder_pointers(folder, table))
    try:
        assert overlapping(fig, monkeypatch) == []
    finally:
        plt.close(fig)


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
    # a point where the baseline diverged is no measured help: the pointer says what happened there
    pd.DataFrame({"value": [25000, 0], "label": ["25,000", "all (1,003,854)"],
                  "verdict": ["hurt", "helped: the baseline diverged"]}).to_csv(study / "study.csv", index=False)
    assert ladder_pointers(folder, table) == {
        "dropout": "hurt here; trained where the baseline diverged, at train_chars all (1,003,854) (studies/dropout)"}


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
    (["--sweep", "nonsense=1,2", "--stage", "mlp"], "unknown hyperparameter 'nonsense' in --sweep"),
    (["--sweep", "n_layer=1,2", "--stage", "residual", "--baseline-set", "bogus=1"],
     "unknown hyperparameter 'bogus' in --baseline-set"),
    (["--sweep", "n_layer=1,2", "--stage", "bigram"], "bigram is the first rung"),
    (["--sweep", "n_layer=1,2", "--stage", "residual", "--baseline", "residual"], "compares residual with itself"),
    (["--sweep", "n_layer=1,2", "--stage", "residual", "--baseline-set", "n_layer=3"], "the setting being swept"),
    (["--study", "dropout", "--set", "train_chars=1000"], "changes the setting the study sweeps"),
    (["--study", "dropout", "--stage", "mlp"], "--study does not read --stage"),
    (["--stage", "mlp", "--baseline", "bigram"], "use them with --sweep"),
    (["--study", "dropout", "--sweep", "n_layer=1,2", "--stage", "residual"], "two different things to do"),
    (["--sweep", "train_chars=5,100", "--stage", "dropout"], "train_chars 5 is too small"),
    (["--sweep", "train_chars=-5,100", "--stage", "dropout"], "train_chars must be 0"),
    (["--sweep", "train_chars=100,99999999", "--stage", "dropout"], "more than the training split holds"),
])
def test_bad_study_input_gets_one_error_line(args, message, tmp_path, corpus_path):
    code, out, err = run_main(*args, "--profile", "smoke", "--data", str(corpus_path), "--out", str(tmp_path))
    assert_one_clear_line(code, err, message)
    assert not list(tmp_path.rglob("run.json"))  # nothing trained


@pytest.mark.parametrize("args, command", [
    (["--study", "dropout"], "python runner.py --study dropout --profile smoke"),
    (["--sweep", "learning_rate=1e-3,1e-2", "--stage", "mlp"],
     "python runner.py --sweep learning_rate=0.001,0.01 --stage mlp --baseline multi_head --profile smoke"),
    (["--sweep", "n_layer=1,2", "--stage", "residual", "--baseline-set", "residual=false"],
     "python runner.py --sweep n_layer=1,2 --stage residual --baseline residual --baseline-set residual=false "
     "--profile smoke"),
])
def test_chart_of_an_untrained_study_names_the_command_that_trains_it(tmp_path, corpus_path, args, command):
    code, _, err = run_main(*args, "--chart", "--profile", "smoke", "--data", str(corpus_path), "--out", str(tmp_path))
    assert_one_clear_line(code, err, f"train it first ({command} and this command's --out")  # --out chose it
    parsed = run_main(*command.split()[2:], "--list", "--data", str(corpus_path))  # the command parses
    assert "error: --list and --sweep" in parsed[2] or "error: --list and --study" in parsed[2]


def test_chart_of_untrained_studies_makes_no_folder(tmp_path, corpus_path):
    code, _, err = run_main("--study", "dropout", "--chart", "--profile", "smoke", "--data", str(corpus_path),
                            "--out", str(tmp_path))
    assert_one_clear_line(code, err, "no runs of study dropout")
    assert not any(tmp_path.rglob("studies"))  # no empty study folder left behind
    (tmp_path / "smoke" / "studies" / "dropout").mkdir(parents=True)  # a first training stopped before any run
    code, _, err = run_main("--study", "all", "--chart", "--profile", "smoke", "--data", str(corpus_path),
                            "--out", str(tmp_path))
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == len(STUDIES) + 1 and "study dropout: nothing trained in" in err  # every study looked at
    assert lines[-1].startswith("error: no study has runs in")
