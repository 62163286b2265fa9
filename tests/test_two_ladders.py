"""Two ladders on one machinery: the lecture's and the modern one (issue 30). Which runs a command trains, where
each ladder's report goes, the studies whose points change the stage or switch a piece off, and the one-line
errors of the new flag."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from common.jobs import training_tasks
from common.profiles import get_profile
from common.run import Stage
from common.studies import STUDIES, LeaveOneOut, Pieces, choose_studies, crossovers, study_tasks
from stages import ALL_STAGE_NAMES as ALL_ORDER
from stages import LADDERS, MODERN_LADDER, MODERN_LEFT_OUT, STAGE_NAMES, STAGES, predecessor
from test_bad_input import assert_one_clear_line, run_main

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "results" / "cpu"
ALL = {name: Stage.from_module(name, module) for name, module in STAGES.items()}


# -- which runs a command trains -------------------------------------------------------------------------

def test_each_ladder_trains_with_its_own_seeds_and_a_shared_rung_with_both():
    cpu = get_profile("cpu")
    tasks = training_tasks(LADDERS, ALL_ORDER, None, None, cpu)
    seeds = {stage: [s for n, s in tasks if n == stage] for stage in dict.fromkeys(n for n, _ in tasks)}
    assert list(seeds) == list(dict.fromkeys(STAGE_NAMES + MODERN_LADDER))  # both ladders, in order, each rung once
    assert seeds["bigram"] == list(cpu.seeds) == [0, 1, 2]
    assert seeds["gelu"] == list(cpu.seeds_for("modern")) == [0, 1, 2, 3, 4]
    assert seeds["layernorm"] == [0, 1, 2, 3, 4]  # in both ladders: the seeds of both
    assert not set(MODERN_LEFT_OUT) & set(seeds)  # the left-out pieces are a study's, not a ladder's


def test_one_ladder_one_stage_and_explicit_seeds():
    cpu = get_profile("cpu")
    lecture = training_tasks({"lecture": LADDERS["lecture"]}, ALL_ORDER, None, None, cpu)
    assert {n for n, _ in lecture} == set(STAGE_NAMES) and {s for _, s in lecture} == {0, 1, 2}
    assert training_tasks(LADDERS, ALL_ORDER, ["rope"], None, cpu) == [("rope", s) for s in range(5)]
    assert training_tasks(LADDERS, ALL_ORDER, ["swiglu"], None, cpu) == [("swiglu", s) for s in (0, 1, 2)]
    assert training_tasks(LADDERS, ALL_ORDER, ["rope", "bigram"], [7], cpu) == [("bigram", 7), ("rope", 7)]


@pytest.mark.parametrize("args, message", [
    (["--ladder", "ancient"], "invalid choice: 'ancient'"),
    (["--ladder", "modern", "--stage", "gelu"], "--stage and --ladder each choose what to train"),
    (["--ladder", "modern", "--all"], "--ladder and --all each choose what to train"),
    (["--stage", "rope", "--set", "rope=maybe"], "rope must be of type bool"),
    (["--stage", "softcap", "--set", "logit_cap=-1"], "logit_cap must be a positive finite number"),
    (["--stage", "rope", "--set", "n_head=3"], "must be divisible by n_head"),
    (["--sweep", "learning_rate=1e-2,3e-2", "--stage", "qk_norm", "--baseline", "nope"], "invalid choice: 'nope'"),
])
def test_bad_ladder_input_gets_one_error_line(args, message, tmp_path, corpus_path):
    code, out, err = run_main(*args, "--profile", "smoke", "--data", str(corpus_path), "--out", str(tmp_path))
    assert_one_clear_line(code, err, message)
    assert not list(tmp_path.rglob("run.json"))  # nothing trained


def test_list_names_each_ladder_and_the_pieces_left_out(corpus_path):
    code, out, _ = run_main("--list", "--profile", "smoke", "--data", str(corpus_path))
    assert code == 0
    assert "the lecture's ladder" in out and "the modern ladder" in out and "left out of the ladder" in out
    for name in STAGE_NAMES + MODERN_LADDER + MODERN_LEFT_OUT:
        assert f" {name} " in out


# -- where each ladder's report goes ----------------------------------------------------------------------

def copy_runs(folder: Path, stages: list[str]) -> None:
    for stage in stages:  # saved runs only: no checkpoints, weights or corpus needed
        shutil.copytree(COMMITTED / "runs" / stage, folder / "runs" / stage,
                        ignore=shutil.ignore_patterns("checkpoint.pt"))


def ladders() -> dict[str, dict[str, Stage]]:
    return {name: {stage: ALL[stage] for stage in rungs} for name, rungs in LADDERS.items()}


def test_the_modern_ladder_is_reported_in_its_own_folder_from_the_shared_runs(tmp_path, monkeypatch):
    import common.chart
    from common.report import write_ladders
    titles = {}
    draw = common.chart.draw_ladder
    monkeypatch.setattr(common.chart, "draw_ladder",
                        lambda table, curves, path, title, **kw: (titles.update({path.parent.name: title}),
                                                                  draw(table, curves, path, title, **kw)))
    folder = tmp_path / "cpu"
    copy_runs(folder, ["bigram", "mlp", "layernorm", "gelu", "rope"])
    write_ladders(folder, get_profile("cpu"), ladders(), about={"modern": "From the lecture's GPT."})
    lecture, modern = pd.read_csv(folder / "ladder.csv"), pd.read_csv(folder / "modern" / "ladder.csv")
    assert "gelu" not in set(lecture.stage)
    assert list(modern.stage) == ["layernorm", "gelu", "rope"]  # the first row is layernorm, then each step
    assert pd.isna(modern.delta.iloc[0]) and modern.delta.iloc[1:].notna().all()
    assert (modern.tokens_per_second > 0).all()
    page = (folder / "modern" / "ladder.md").read_text()
    assert page.startswith("# The modern ladder") and "From the lecture's GPT. A ladder that" in page
    assert "5 seeds a rung, 15 runs on" in page  # its own seeds, not the lecture ladder's
    assert "3 seeds a rung (layernorm 5), 11 runs on" in (folder / "ladder.md").read_text()  # layernorm: both's
    assert "11 runs, 3 seeds a rung (layernorm 5)," in titles["cpu"]  # the charts say what the pages say
    assert "15 runs, 5 seeds a rung," in titles["modern"]
    assert not (folder / "modern" / "runs").exists()  # the runs stay shared in the profile's folder


def test_a_ladder_without_runs_of_its_own_is_not_reported(tmp_path):
    from common.report import write_ladders
    folder = tmp_path / "cpu"
    copy_runs(folder, ["bigram", "mlp", "layernorm"])  # layernorm is the modern ladder's first rung, not its own
    write_ladders(folder, get_profile("cpu"), ladders())
    assert (folder / "ladder.csv").exists() and not (folder / "modern").exists()


def test_training_only_modern_rungs_into_a_fresh_folder_reports_the_modern_ladder_alone(tmp_path, corpus_path):
    """`--stage gelu --out NEW` trains and reports the modern ladder (layernorm has no runs there): exit 0, no
    lecture table, no "train first" error after the training."""
    out = tmp_path / "out"
    code, stdout, stderr = run_main("--profile", "smoke", "--stage", "gelu", "--seeds", "0", "--out", str(out),
                                    "--data", str(corpus_path))
    assert code == 0, stderr
    assert list(pd.read_csv(out / "smoke" / "modern" / "ladder.csv").stage) == ["gelu"]
    assert not (out / "smoke" / "ladder.csv").exists()


# -- studies of pieces ------------------------------------------------------------------------------------

def options(tmp_path):
    from common.run import RunOptions
    return RunOptions("cpu", {}, str(tmp_path))


def test_left_out_pieces_are_each_measured_against_the_top_rung_trained_once(tmp_path):
    study = STUDIES["modern-left-out"]
    assert isinstance(study, Pieces) and study.baseline == MODERN_LADDER[-1]
    assert set(study.values) == set(MODERN_LEFT_OUT)
    tasks = study_tasks(study, tmp_path, options(tmp_path))
    stages = [stage for stage, _, _ in tasks]
    assert stages.count(MODERN_LADDER[-1]) == len(study.seeds)  # the baseline once, not once per piece
    assert all(stages.count(piece) == len(study.seeds) for piece in MODERN_LEFT_OUT)
    assert all(opts.overrides == {} for _, _, opts in tasks)  # every piece under the profile's own settings


def test_leave_one_out_switches_each_piece_off_in_turn(tmp_path):
    study = STUDIES["modern-leave-one-out"]
    assert isinstance(study, LeaveOneOut) and study.rung == study.baseline == MODERN_LADDER[-1]
    assert list(study.values) == MODERN_LADDER[1:]  # every piece the final rung has, each a switch of its config
    tasks = study_tasks(study, tmp_path, options(tmp_path))
    switched = [opts.overrides for _, _, opts in tasks if opts.overrides]
    assert switched == [{piece: False} for piece in MODERN_LADDER[1:] for _ in study.seeds]
    assert sum(not opts.overrides for _, _, opts in tasks) == len(study.seeds)  # the whole rung, once


def test_modern_steps_holds_the_lecture_gpt_at_the_profiles_steps(tmp_path):
    study = STUDIES["modern-steps"]
    tasks = study_tasks(study, tmp_path, options(tmp_path))
    baseline = [opts for stage, _, opts in tasks if stage == "layernorm"]
    assert len(baseline) == len(study.seeds) and all(o.overrides == {"max_iters": 2000} for o in baseline)
    steps = sorted({opts.overrides["max_iters"] for stage, _, opts in tasks if stage == MODERN_LADDER[-1]})
    assert steps == [500, 1000, 1500, 2000]


def test_pieces_by_name_have_no_crossover():
    table = pd.DataFrame({"label": ["a", "b"], "value": ["a", "b"], "verdict": ["helped", "within noise"]})
    assert crossovers(table) == []
    numbers = pd.DataFrame({"label": ["1", "2"], "value": [1, 2], "verdict": ["helped", "within noise"]})
    assert crossovers(numbers) == [("1", "2")]


def test_a_sweep_of_a_modern_rung_compares_it_with_the_rung_before_it_in_its_ladder():
    smoke = get_profile("smoke")
    for rung in MODERN_LADDER[1:] + MODERN_LEFT_OUT:
        (study,) = choose_studies([], "learning_rate=1e-3,1e-2", [rung], None, [], smoke, {}, ALL, None,
                                  {name: predecessor(name) for name in ALL})
        assert study.baseline == predecessor(rung) and study.baseline != "scaled"


def test_a_modern_step_points_to_the_study_of_that_step_not_to_the_rungs_other_studies():
    from common.studies import studies_the_step
    modern, lecture = MODERN_LADDER, STAGE_NAMES
    assert studies_the_step(STUDIES["qk_norm"], modern) and studies_the_step(STUDIES["rope"], modern)
    for name in ("modern-steps", "modern-leave-one-out", "modern-left-out"):  # they measure other things of qk_norm
        assert not studies_the_step(STUDIES[name], modern)
    assert studies_the_step(STUDIES["dropout"], lecture) and studies_the_step(STUDIES["residual"], lecture)
    assert not studies_the_step(STUDIES["dropout"], modern)  # dropout is no modern rung


def test_a_study_of_pieces_by_name_draws_no_line_between_them():
    import matplotlib.pyplot as plt

    from common.chart import ordered, study_figure
    table = pd.DataFrame({"value": ["a", "b"], "label": ["a", "b"], "train_chars_used": [float("nan")] * 2,
                          "baseline_seeds": [3, 3], "baseline_mean": [1.7, 1.7], "baseline_std": [0.01, 0.01],
                          "baseline_diverged": [0, 0], "rung_seeds": [3, 3], "rung_mean": [1.69, 1.71],
                          "rung_std": [0.01, 0.01], "rung_diverged": [0, 0], "delta": [-0.01, 0.01],
                          "ci_low": [-0.03, -0.01], "ci_high": [0.01, 0.03], "p_value": [0.1, 0.1],
                          "verdict": ["within noise", "within noise"]})
    assert not ordered(table) and ordered(table.assign(value=[1, 2]))
    fig = study_figure(table, "t", setting="piece", rung="each piece", against="qk_norm", crossovers=[])
    try:
        delta_panel, means_panel = fig.axes[:2]
        assert not [c for c in delta_panel.collections if "Poly" in type(c).__name__]  # no band along the pieces
        assert [c for c in delta_panel.collections if type(c).__name__ == "LineCollection"]  # an interval each
        joined = [line for line in means_panel.get_lines() if len(line.get_xdata()) > 1]
        assert joined and all(line.get_linestyle() == "None" for line in joined)  # markers, no line between
    finally:
        plt.close(fig)


@pytest.mark.parametrize("name, unique", [("modern-left-out", 24), ("modern-leave-one-out", 15)])
def test_a_study_counts_a_shared_baseline_once(tmp_path, name, unique):
    """modern-left-out's 7 pieces share one baseline (the top rung, 3 seeds): 21 + 3 runs, not 21 + 7 x 3."""
    from common.report import write_study_report
    folder = tmp_path / name
    shutil.copytree(COMMITTED / "studies" / name, folder, ignore=shutil.ignore_patterns("checkpoint.pt"))
    write_study_report(folder, STUDIES[name], get_profile("cpu"))
    assert f"; every other setting as the profile has it. {unique} runs on " in (folder / "study.md").read_text()
