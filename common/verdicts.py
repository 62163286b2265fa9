"""The verdict rule: whether a step helped, hurt or stayed within noise, decided from the seeds.

The ladder's table (common.ladder) and the studies (common.studies) both judge a step by it: from
each side's final validation losses over seeds (also in docs/verdicts-and-profiles.md),
    delta = mean val loss of the stage - mean val loss of the stage before it
    95% confidence interval of delta: Welch's t interval, delta +- t(0.975, df) * se, with
        se = sqrt(s_a**2 / n_a + s_b**2 / n_b) (s: sample standard deviation over seeds, n: seeds)
        and df from the Welch-Satterthwaite equation
    helped        if the whole interval lies below -NOISE_FLOOR
    hurt          if the whole interval lies above +NOISE_FLOOR
    within noise  otherwise
That is Welch's one-sided t-test at the 2.5% level for each direction (at least 95% confidence),
and a change smaller than the floor is never called one. A step where either stage has fewer
than 2 seeds gets no verdict ("too few seeds"): one seed says nothing about the spread.

Divergence is a result, not noise: a run whose final loss is not finite, or whose final training
loss is worse than the uniform guess (ln of the vocabulary size, 4.17 nats for 65 characters) while
its validation loss ended more than DIVERGED_RISE above its own best evaluation, has diverged (`run_diverged`). A rung with
a diverged seed has no meaningful mean, so a step into or out of it is not tested by Welch's rule
but called what it is: "hurt: diverged" (this rung diverged, the one before trained), "helped: the
rung before diverged", or "diverged, as the rung before".
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import pandas as pd

NOISE_FLOOR = 0.005  # nats: differences smaller than this are never called a change
# nats a run's validation loss must end above its best to count as a rise: a run of a step or two ends within a
# sampled evaluation's noise (about 0.008) of where it started, which is no divergence; every diverged run in the
# committed studies ended at least 1 nat above its best, most of them at millions or NaN
DIVERGED_RISE = 0.1
CONFIDENCE = 0.95
VERDICTS = ("helped", "within noise", "hurt")
DIVERGED = "hurt: diverged"
CURED = "helped: the rung before diverged"
BOTH_DIVERGED = "diverged, as the rung before"
TOO_FEW = "too few seeds"
MISSING = "missing"
AFTER_GAP = "no verdict: rung before is missing"
VERDICT_RULE = ("`helped` (or `hurt`) when the whole 95% confidence interval of the change in mean validation "
                f"loss (Welch's t over seeds) lies below -{NOISE_FLOOR} (above +{NOISE_FLOOR}); no verdict with "
                "fewer than 2 seeds (docs/verdicts-and-profiles.md)")
def welch_interval(mean_a: float, std_a: float, n_a: int, mean_b: float, std_b: float, n_b: int,
                   confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(low, high, one-sided p) for the difference mean_b - mean_a, by Welch's t; needs n >= 2 on both sides.

    p is the probability, with no true change, of a difference at least this far from zero in its
    own direction (one-sided).
    """
    from scipy import stats

    delta = mean_b - mean_a
    va, vb = std_a ** 2 / n_a, std_b ** 2 / n_b
    se = math.sqrt(va + vb)
    if se == 0.0:  # identical seeds on both sides: no spread to test against
        return delta, delta, 0.0 if delta != 0 else 1.0
    df = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    p = float(stats.t.sf(abs(delta) / se, df))
    return delta - half, delta + half, p


def run_diverged(record: Mapping[str, Any]) -> bool:
    """Whether a run diverged: a final loss is not finite, or its *training* loss ended worse than the
    uniform guess while its validation loss ended more than DIVERGED_RISE above its own best evaluation.

    The training loss, not the validation loss, tells divergence from overfitting: a model that
    memorised a small text (train 0.53, validation 4.21) has not diverged, and a run still on its way
    down from the start (the best evaluation is the last) has not either."""
    val, train, best = record["final"]["val_loss"], record["final"]["train_loss"], record["best"]["val_loss"]
    vocab_size = (record.get("model_config") or {}).get("vocab_size") or 65
    return (bool(record.get("diverged")) or not (math.isfinite(val) and math.isfinite(train))
            or (train > math.log(vocab_size) and val > best + DIVERGED_RISE))


def verdict_kind(text: str) -> str:
    """The colour family of a verdict: helped, hurt, within noise, or '' (no verdict)."""
    return next((v for v in VERDICTS if str(text).startswith(v)), "within noise" if text == BOTH_DIVERGED else "")


def verdict(ci_low: float, ci_high: float) -> str:
    if ci_high < -NOISE_FLOOR:
        return "helped"
    if ci_low > NOISE_FLOOR:
        return "hurt"
    return "within noise"


def summarise(val_losses: pd.Series, diverged: int) -> dict[str, Any]:
    """A rung's (or a study side's) final validation losses as compare() reads them: seeds, mean, sample
    standard deviation, diverged seeds. A side with a diverged seed has no mean and no spread (a mean of
    4.1e7 says only that something blew up, and one over the seeds that did not diverge would hide it), nor
    has one where a seed ended at NaN."""
    n = len(val_losses)
    has_mean = n and not diverged
    return {"seeds": n, "diverged": int(diverged),
            "val_loss_mean": val_losses.mean(skipna=False) if has_mean else float("nan"),
            "val_loss_std": val_losses.std(ddof=1, skipna=False) if has_mean and n > 1 else float("nan")}


def compare(row: dict[str, Any], previous: dict[str, Any]) -> None:
    """Fill in the step from `previous` to `row`: delta, its interval and the verdict."""
    if row["diverged"] or previous["diverged"]:  # no mean to test: say what happened
        row["verdict"] = (BOTH_DIVERGED if row["diverged"] and previous["diverged"]
                          else DIVERGED if row["diverged"] else CURED)
        return
    row["delta"] = row["val_loss_mean"] - previous["val_loss_mean"]
    if row["seeds"] < 2 or previous["seeds"] < 2:
        row["verdict"] = TOO_FEW
        return
    low, high, p = welch_interval(previous["val_loss_mean"], previous["val_loss_std"], previous["seeds"],
                                  row["val_loss_mean"], row["val_loss_std"], row["seeds"])
    row.update(ci_low=low, ci_high=high, p_value=p, verdict=verdict(low, high))
