"""The loss ladder as a table: one row per stage, with a verdict per step decided from the seeds.

The verdict rule (also in the README):
    delta = mean val loss of the stage - mean val loss of the stage before it
    noise = 2 * sqrt(s_a**2 / n_a + s_b**2 / n_b)   (two standard errors of that difference;
            s is the sample standard deviation over seeds, n the number of seeds),
            and never less than NOISE_FLOOR
    helped        if delta < -noise
    hurt          if delta > +noise
    within noise  otherwise
With one seed a stage's spread is unknown and counts as zero, so only the floor guards it:
run at least 3 seeds for verdicts you can trust.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import pandas as pd

NOISE_FLOOR = 0.005  # nats: differences smaller than this are never called a change
VERDICTS = ("helped", "within noise", "hurt")
COLUMNS = ["stage", "adds", "params", "seeds", "val_loss_mean", "val_loss_std", "delta", "noise", "verdict",
           "train_loss_mean", "gap", "best_val_loss_mean", "lecture_val_loss", "train_seconds"]


def step_noise(std_a: float, n_a: int, std_b: float, n_b: int) -> float:
    """Two standard errors of the difference of two means, at least NOISE_FLOOR."""
    var = sum((0.0 if (n < 2 or math.isnan(s)) else s * s) / n for s, n in ((std_a, n_a), (std_b, n_b)))
    return max(2.0 * math.sqrt(var), NOISE_FLOOR)


def verdict(delta: float, noise: float) -> str:
    if delta < -noise:
        return "helped"
    if delta > noise:
        return "hurt"
    return "within noise"


def ladder_table(runs: Iterable[Mapping[str, Any]], stage_order: list[str],
                 stage_info: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per stage (in ladder order) from per-run records (dicts as written to run.json).

    stage_info[stage] gives 'adds' and 'lecture_val_loss'. Stages with no runs are left out;
    a step's delta and verdict compare a stage with the nearest earlier stage that has runs.
    """
    runs = list(runs)
    if not runs:
        return pd.DataFrame(columns=COLUMNS)
    df = pd.DataFrame([{"stage": r["stage"], "seed": r["seed"], "params": r["params"],
                        "val_loss": r["final"]["val_loss"], "train_loss": r["final"]["train_loss"],
                        "best_val_loss": r["best"]["val_loss"], "train_seconds": r["train_seconds"]}
                       for r in runs])
    rows = []
    previous = None
    for stage in stage_order:
        group = df[df.stage == stage]
        if group.empty:
            continue
        n = len(group)
        mean = group.val_loss.mean()
        std = group.val_loss.std(ddof=1) if n > 1 else float("nan")
        row = {"stage": stage, "adds": stage_info[stage]["adds"], "params": int(group.params.iloc[0]), "seeds": n,
               "val_loss_mean": mean, "val_loss_std": std, "delta": float("nan"), "noise": float("nan"),
               "verdict": "", "train_loss_mean": group.train_loss.mean(),
               "gap": mean - group.train_loss.mean(), "best_val_loss_mean": group.best_val_loss.mean(),
               "lecture_val_loss": stage_info[stage].get("lecture_val_loss"),
               "train_seconds": group.train_seconds.mean()}
        if previous is not None:
            row["delta"] = mean - previous["val_loss_mean"]
            row["noise"] = step_noise(std, n, previous["val_loss_std"], previous["seeds"])
            row["verdict"] = verdict(row["delta"], row["noise"])
        rows.append(row)
        previous = row
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["lecture_val_loss"] = pd.to_numeric(table["lecture_val_loss"], errors="coerce")
    return table


def _cell(value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if column in ("delta",):
        return f"{value:+.3f}"
    if column == "train_seconds":
        return f"{value:.1f}"
    if column in ("params", "seeds"):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of the ladder (numbers to 3 decimals)."""
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---:" if table[c].dtype.kind in "if" else "---" for c in table.columns) + "|"
    body = ["| " + " | ".join(_cell(row[c], c) for c in table.columns) + " |" for _, row in table.iterrows()]
    return "\n".join([header, rule, *body]) + "\n"
