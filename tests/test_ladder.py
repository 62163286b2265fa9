"""The ladder table and the verdict rule, on hand-made results."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from common.ladder import ladder_table
from common.markdown import to_markdown
from common.verdicts import AFTER_GAP, MISSING, NOISE_FLOOR, TOO_FEW, verdict, welch_interval

INFO = {s: {"adds": f"adds {s}", "lecture_val_loss": lv} for s, lv in
        [("a", 2.5), ("b", None), ("c", 2.0), ("d", None)]}
ORDER = ["a", "b", "c", "d"]


def run(stage, seed, val, train=None, params=100):
    train = val - 0.05 if train is None else train
    return {"stage": stage, "seed": seed, "params": params, "train_seconds": 2.0,
            "final": {"step": 10, "val_loss": val, "train_loss": train}, "best": {"step": 10, "val_loss": val - 0.01}}


def test_the_interval_is_welchs():
    a, b = [2.50, 2.52, 2.47], [2.45, 2.41, 2.46, 2.44]
    low, high, p = welch_interval(np.mean(a), np.std(a, ddof=1), 3, np.mean(b), np.std(b, ddof=1), 4)
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 4
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    delta = np.mean(b) - np.mean(a)
    assert (low, high) == pytest.approx((delta - half, delta + half))
    assert p == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue / 2)  # one-sided


@pytest.mark.parametrize("low, high, expected", [
    (-0.08, -0.0051, "helped"), (-0.08, -0.0049, "within noise"), (-0.08, 0.01, "within noise"),
    (-0.003, 0.003, "within noise"), (0.0049, 0.08, "within noise"), (0.0051, 0.08, "hurt"),
])
def test_verdict_on_both_sides_of_the_line(low, high, expected):
    assert verdict(low, high) == expected


def test_a_step_with_no_effect_is_rarely_called_a_change():
    """With 3 seeds and no true change, 'helped' must come out at most ~2.5% of the time (the old
    two-standard-errors rule let 12-18% through in the two directions)."""
    rng = np.random.default_rng(0)
    trials, called = 4000, 0
    for _ in range(trials):
        a, b = rng.normal(2.0, 0.02, 3), rng.normal(2.0, 0.02, 3)
        low, high, _ = welch_interval(a.mean(), a.std(ddof=1), 3, b.mean(), b.std(ddof=1), 3)
        called += verdict(low, high) != "within noise"
    assert called / trials < 0.055


def test_table_rows_deltas_intervals_and_verdicts():
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
    assert (table.ci_low[1:] < table.delta[1:]).all() and (table.delta[1:] < table.ci_high[1:]).all()
    assert table.ci_low[1] < 0 < table.ci_high[1]
    assert table.gap.tolist() == pytest.approx([0.05] * 4)
    assert table.lecture_val_loss[0] == 2.5 and math.isnan(table.lecture_val_loss[1])


def test_the_csv_has_the_interval():
    table = ladder_table([run("a", s, 2.5 + s / 100) for s in range(3)] + [run("b", s, 2.4) for s in range(3)],
                         ORDER, INFO)
    assert {"ci_low", "ci_high", "p_value"} <= set(pd.read_csv(pd.io.common.StringIO(table.to_csv())).columns)


def test_verdict_flips_when_the_seeds_spread_grows():
    tight = [run("a", s, v) for s, v in enumerate([2.50, 2.51, 2.49])] + \
            [run("b", s, v) for s, v in enumerate([2.47, 2.48, 2.46])]
    loose = [run("a", s, v) for s, v in enumerate([2.40, 2.50, 2.60])] + \
            [run("b", s, v) for s, v in enumerate([2.37, 2.47, 2.57])]
    assert ladder_table(tight, ORDER, INFO).verdict[1] == "helped"
    assert ladder_table(loose, ORDER, INFO).verdict[1] == "within noise"


def test_one_seed_gives_no_verdict():
    table = ladder_table([run("a", 0, 2.5), run("b", 0, 2.0), run("b", 1, 2.0)], ORDER, INFO)
    assert table.verdict[1] == TOO_FEW and table.delta[1] == pytest.approx(-0.5)
    assert math.isnan(table.ci_low[1])


def test_a_missing_rung_is_shown_and_never_compared_across():
    runs = [run("a", s, 2.5) for s in range(3)] + [run("c", s, 2.0) for s in range(3)]
    table = ladder_table(runs, ORDER, INFO)
    assert list(table.stage) == ["a", "b", "c"]  # b missing between them; d after the last is left out
    assert table.verdict.tolist() == ["", MISSING, AFTER_GAP]
    assert math.isnan(table.delta[2]) and table.seeds[1] == 0


def test_markdown_has_one_line_per_stage():
    table = ladder_table([run("a", 0, 2.5), run("b", 0, 2.4)], ORDER, INFO)
    lines = to_markdown(table).strip().splitlines()
    assert len(lines) == 2 + 2
    assert lines[0].startswith("| stage | adds | params | seeds | diverged | val_loss_mean")
    assert "| b |" in lines[3] and "-0.100" in lines[3] and TOO_FEW in lines[3]
    assert NOISE_FLOOR == 0.005
