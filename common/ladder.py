"""The loss ladder as a table: one row per stage, with a verdict per step decided from the seeds.

The verdict rule (also in the README), from each stage's final validation losses over seeds:
    delta = mean val loss of the stage - mean val loss of the stage before it
    95% confidence interval of delta: Welch's t interval, delta +- t(0.975, df) * se, with
        se = sqrt(s_a**2 / n_a + s_b**2 / n_b) (s: sample standard deviation over seeds, n: seeds)
        and df from the Welch-Satterthwaite equation
    helped        if the whole interval lies below -NOISE_FLOOR
    hurt          if the whole interval lies above +NOISE_FLOOR
    within noise  otherwise
That is Welch's one-sided t-test at the 2.5% level for each direction (at least 95% confidence),
and a change smaller than the floor is never called one. A step where either stage has fewer
than 2 seeds gets no verdict ("too few seeds"): one seed says nothing about the spread. A rung
with no runs between rungs that have them shows as "missing", and the rung after it gets no
verdict: it is never compared across the gap.

Divergence is a result, not noise: a run whose final loss is not finite, or whose final training
loss is worse than the uniform guess (ln of the vocabulary size, 4.17 nats for 65 characters) while
its validation loss is worse than its own best evaluation, has diverged (`run_diverged`). A rung with
a diverged seed has no meaningful mean, so a step into or out of it is not tested by Welch's rule
but called what it is: "hurt: diverged" (this rung diverged, the one before trained), "helped: the
rung before diverged", or "diverged, as the rung before".
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import pandas as pd

NOISE_FLOOR = 0.005  # nats: differences smaller than this are never called a change
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
                "fewer than 2 seeds (see README)")
COLUMNS = ["stage", "adds", "params", "seeds", "diverged", "val_loss_mean", "val_loss_std", "delta", "ci_low", "ci_high",
           "p_value", "verdict", "train_loss_mean", "gap", "best_val_loss_mean", "lecture_val_loss", "train_seconds"]


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
    uniform guess while its validation loss ended worse than its own best evaluation.

    The training loss, not the validation loss, tells divergence from overfitting: a model that
    memorised a small text (train 0.53, validation 4.21) has not diverged, and a run still on its way
    down from the start (the best evaluation is the last) has not either."""
    val, train, best = record["final"]["val_loss"], record["final"]["train_loss"], record["best"]["val_loss"]
    vocab_size = (record.get("model_config") or {}).get("vocab_size") or 65
    return (bool(record.get("diverged")) or not (math.isfinite(val) and math.isfinite(train))
            or (train > math.log(vocab_size) and val > best))


def verdict_kind(text: str) -> str:
    """The colour family of a verdict: helped, hurt, within noise, or '' (no verdict)."""
    return next((v for v in VERDICTS if str(text).startswith(v)), "within noise" if text == BOTH_DIVERGED else "")


def verdict(ci_low: float, ci_high: float) -> str:
    if ci_high < -NOISE_FLOOR:
        return "helped"
    if ci_low > NOISE_FLOOR:
        return "hurt"
    return "within noise"


def _per_stage(runs: list[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{"stage": r["stage"], "seed": r["seed"], "params": r["params"],
                          "val_loss": r["final"]["val_loss"], "train_loss": r["final"]["train_loss"],
                          "best_val_loss": r["best"]["val_loss"], "train_seconds": r["train_seconds"],
                          "diverged": run_diverged(r)}
                         for r in runs])


def summarise(val_losses: pd.Series, diverged: int) -> dict[str, Any]:
    """A rung's (or a study side's) final validation losses as compare() reads them: seeds, mean, sample
    standard deviation, diverged seeds. A seed that ended at NaN leaves no mean and no spread."""
    n = len(val_losses)
    return {"seeds": n, "diverged": int(diverged),
            "val_loss_mean": val_losses.mean(skipna=False) if n else float("nan"),
            "val_loss_std": val_losses.std(ddof=1, skipna=False) if n > 1 else float("nan")}


def _row(stage: str, group: pd.DataFrame, info: Mapping[str, Any]) -> dict[str, Any]:
    summary = summarise(group.val_loss, group.diverged.sum())
    mean = summary["val_loss_mean"]
    return {"stage": stage, "adds": info["adds"], "params": int(group.params.iloc[0]), **summary,
            "delta": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "p_value": float("nan"),
            "verdict": "", "train_loss_mean": group.train_loss.mean(), "gap": mean - group.train_loss.mean(),
            "best_val_loss_mean": group.best_val_loss.mean(), "lecture_val_loss": info.get("lecture_val_loss"),
            "train_seconds": group.train_seconds.mean()}


def _missing_row(stage: str, info: Mapping[str, Any]) -> dict[str, Any]:
    row = {c: float("nan") for c in COLUMNS}
    row.update(stage=stage, adds=info["adds"], params=0, seeds=0, diverged=0, verdict=MISSING,
               lecture_val_loss=info.get("lecture_val_loss"))
    return row


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


def ladder_table(runs: Iterable[Mapping[str, Any]], stage_order: list[str],
                 stage_info: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per stage (in ladder order) from per-run records (dicts as written to run.json).

    stage_info[stage] gives 'adds' and 'lecture_val_loss'. Stages before the first and after the
    last stage with runs are left out; a stage between them without runs is a "missing" row.
    """
    runs = list(runs)
    if not runs:
        return pd.DataFrame(columns=COLUMNS)
    df = _per_stage(runs)
    present = [i for i, stage in enumerate(stage_order) if (df.stage == stage).any()]
    rows, previous = [], None
    for stage in stage_order[present[0]: present[-1] + 1]:
        group = df[df.stage == stage]
        if group.empty:
            rows.append(_missing_row(stage, stage_info[stage]))
            previous = None
            continue
        row = _row(stage, group, stage_info[stage])
        if previous is not None:
            compare(row, previous)
        elif rows:  # the rung before is missing
            row["verdict"] = AFTER_GAP
        rows.append(row)
        previous = row
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["lecture_val_loss"] = pd.to_numeric(table["lecture_val_loss"], errors="coerce")
    return table


def format_cell(value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if column in ("delta", "ci_low", "ci_high"):
        return f"{value:+.3f}"
    if column == "p_value":
        return f"{value:.3f}" if value >= 0.001 else "<0.001"
    if column == "train_seconds":
        return f"{value:.1f}"
    if column in ("params", "seeds", "diverged"):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of the ladder (numbers to 3 decimals)."""
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---:" if table[c].dtype.kind in "if" else "---" for c in table.columns) + "|"
    body = ["| " + " | ".join(format_cell(row[c], c) for c in table.columns) + " |" for _, row in table.iterrows()]
    return "\n".join([header, rule, *body]) + "\n"
