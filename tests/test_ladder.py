"""The ladder table and the verdict rule, on hand-made results."""
import math

import pytest

from common.ladder import NOISE_FLOOR, ladder_table, step_noise, to_markdown, verdict

INFO = {s: {"adds": f"adds {s}", "lecture_val_loss": lv} for s, lv in
        [("a", 2.5), ("b", None), ("c", 2.0), ("d", None)]}
ORDER = ["a", "b", "c", "d"]


def run(stage, seed, val, train=None, params=100):
    train = val - 0.05 if train is None else train
    return {"stage": stage, "seed": seed, "params": params, "train_seconds": 2.0,
            "final": {"step": 10, "val_loss": val, "train_loss": train}, "best": {"step": 10, "val_loss": val - 0.01}}


def test_noise_is_two_standard_errors_of_the_difference():
    assert step_noise(0.03, 3, 0.04, 3) == pytest.approx(2 * math.sqrt(0.03**2 / 3 + 0.04**2 / 3))
    assert step_noise(0.0, 3, 0.0, 3) == NOISE_FLOOR
    assert step_noise(float("nan"), 1, float("nan"), 1) == NOISE_FLOOR


@pytest.mark.parametrize("delta,noise,expected", [
    (-0.0501, 0.05, "helped"), (-0.0499, 0.05, "within noise"), (0.0, 0.05, "within noise"),
    (0.0499, 0.05, "within noise"), (0.0501, 0.05, "hurt"),
])
def test_verdict_on_both_sides_of_the_line(delta, noise, expected):
    assert verdict(delta, noise) == expected


def test_table_rows_deltas_and_verdicts():
    runs = [run("c", s, v) for s, v in enumerate([2.00, 2.01, 1.99])]  # given out of order on purpose
    runs += [run("a", s, v) for s, v in enumerate([2.50, 2.52, 2.48])]
    runs += [run("b", s, v) for s, v in enumerate([2.49, 2.51, 2.47])]  # -0.01: within noise (std 0.02)
    runs += [run("d", s, v) for s, v in enumerate([2.30, 2.31, 2.29])]  # +0.30: hurt
    table = ladder_table(runs, ORDER, INFO)
    assert list(table.stage) == ORDER
    assert list(table.seeds) == [3, 3, 3, 3]
    assert table.val_loss_mean.tolist() == pytest.approx([2.50, 2.49, 2.00, 2.30])
    assert table.val_loss_std.tolist() == pytest.approx([0.02, 0.02, 0.01, 0.01])
    assert math.isnan(table.delta[0]) and table.verdict[0] == ""
    assert table.delta[1:].tolist() == pytest.approx([-0.01, -0.49, 0.30])
    assert table.verdict.tolist() == ["", "within noise", "helped", "hurt"]
    assert table.gap.tolist() == pytest.approx([0.05] * 4)
    assert table.lecture_val_loss[0] == 2.5 and math.isnan(table.lecture_val_loss[1])


def test_verdict_flips_when_the_seeds_spread_grows():
    tight = [run("a", s, v) for s, v in enumerate([2.50, 2.50, 2.50])] + \
            [run("b", s, v) for s, v in enumerate([2.47, 2.47, 2.47])]
    loose = [run("a", s, v) for s, v in enumerate([2.40, 2.50, 2.60])] + \
            [run("b", s, v) for s, v in enumerate([2.37, 2.47, 2.57])]
    assert ladder_table(tight, ORDER, INFO).verdict[1] == "helped"
    assert ladder_table(loose, ORDER, INFO).verdict[1] == "within noise"


def test_missing_stage_compares_with_nearest_earlier_one():
    runs = [run("a", 0, 2.5), run("a", 1, 2.5), run("c", 0, 2.0), run("c", 1, 2.0)]
    table = ladder_table(runs, ORDER, INFO)
    assert list(table.stage) == ["a", "c"]
    assert table.delta[1] == pytest.approx(-0.5)


def test_markdown_has_one_line_per_stage():
    table = ladder_table([run("a", 0, 2.5), run("b", 0, 2.4)], ORDER, INFO)
    lines = to_markdown(table).strip().splitlines()
    assert len(lines) == 2 + 2
    assert lines[0].startswith("| stage | adds | params | seeds | val_loss_mean")
    assert "| b |" in lines[3] and "-0.100" in lines[3]
