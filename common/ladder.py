"""The loss ladder as a table: one row per stage, each step judged by the verdict rule (common.verdicts).

A rung with no runs between rungs that have them shows as "missing", and the rung after it gets no
verdict: it is never compared across the gap. Stages before the first and after the last stage with
runs are left out.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from common.markdown import to_markdown
from common.verdicts import AFTER_GAP, MISSING, VERDICT_RULE, compare, run_diverged, summarise

LADDER_ABOUT = {  # what each ladder's page says it is (the lecture's: the profile's description alone)
    "modern": "From the lecture's GPT without dropout (`layernorm`, the first row) towards a 2025 GPT, one "
              "post-lecture piece per rung, each row the step from the row above; the pieces left out are measured "
              "in studies/modern-left-out.",
}


def ladder_stages(stages: Mapping[str, Any], ladders: Mapping[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Each ladder's stages, in order: {ladder name: {stage name: Stage}}."""
    return {name: {stage: stages[stage] for stage in rungs} for name, rungs in ladders.items()}


COLUMNS = ["stage", "adds", "params", "seeds", "diverged", "val_loss_mean", "val_loss_std", "delta", "ci_low", "ci_high",
           "p_value", "verdict", "train_loss_mean", "gap", "best_val_loss_mean", "lecture_val_loss", "train_seconds",
           "tokens_per_second"]


def _per_stage(runs: list[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{"stage": r["stage"], "seed": r["seed"], "params": r["params"],
                          "val_loss": r["final"]["val_loss"], "train_loss": r["final"]["train_loss"],
                          "best_val_loss": r["best"]["val_loss"], "train_seconds": r["train_seconds"],
                          "tokens_per_second": r.get("tokens_per_second", float("nan")), "diverged": run_diverged(r)}
                         for r in runs])


def _row(stage: str, group: pd.DataFrame, info: Mapping[str, Any]) -> dict[str, Any]:
    summary = summarise(group.val_loss, group.diverged.sum())
    mean = summary["val_loss_mean"]
    train = float("nan") if summary["diverged"] else group.train_loss.mean()  # a diverged rung has no mean
    return {"stage": stage, "adds": info["adds"], "params": int(group.params.iloc[0]), **summary,
            "delta": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "p_value": float("nan"),
            "verdict": "", "train_loss_mean": train, "gap": mean - train,
            "best_val_loss_mean": group.best_val_loss.mean(), "lecture_val_loss": info.get("lecture_val_loss"),
            "train_seconds": group.train_seconds.mean(), "tokens_per_second": group.tokens_per_second.mean()}


def _missing_row(stage: str, info: Mapping[str, Any]) -> dict[str, Any]:
    row = {c: float("nan") for c in COLUMNS}
    row.update(stage=stage, adds=info["adds"], params=0, seeds=0, diverged=0, verdict=MISSING,
               lecture_val_loss=info.get("lecture_val_loss"))
    return row


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


def stage_info(stages: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What the table needs of each stage (see common.run.Stage): what it adds, the lecture's number."""
    return {name: {"adds": s.adds, "lecture_val_loss": s.lecture_val_loss} for name, s in stages.items()}


def ladder_page(table: pd.DataFrame, header: str, pointers: Mapping[str, str]) -> str:
    """ladder.md: the header, the table, and where a step that did not help here pays (from the studies)."""
    notes = "".join(f"\n- `{stage}`: {note}" for stage, note in pointers.items())
    return (header + to_markdown(table)
            + (f"\nWhere a step that did not help here pays, measured:{notes}\n" if notes else ""))


def write_ladder(out: Path, table: pd.DataFrame, runs: list[Mapping[str, Any]], profile,
                 overrides: Mapping[str, Any] | None, pointers: Mapping[str, str],
                 title: str = "Loss ladder", about: str = "") -> None:
    """ladder.csv and ladder.md in `out`, from the table and the runs it was made of; `about` says what the
    ladder is, before the profile's description."""
    from common.io import write_text
    from common.profiles import overrides_note
    seconds = sum(r["train_seconds"] for r in runs)
    description = profile.description[:1].upper() + profile.description[1:]
    header = (f"# {title} — profile `{profile.name}`\n\n{about + ' ' if about else ''}{description}. "
              f"{seeds_note(table)}, {len(runs)} runs on {runs[0]['device_name']}, {seconds / 60:.1f} min of "
              f"training in all. "
              f"{overrides_note(overrides)}Verdict rule: {VERDICT_RULE}.\n\n")
    write_text(out / "ladder.csv", table.to_csv(index=False, float_format="%.4f"))
    write_text(out / "ladder.md", ladder_page(table, header, pointers))


def seeds_note(table: pd.DataFrame) -> str:
    """How many seeds the rungs have, as the table says: "3 seeds a rung", or "3 seeds a rung (layernorm 5)" when
    some differ (a rung shared with another ladder has the seeds of both); rungs without runs are not counted."""
    trained = [(stage, int(n)) for stage, n in zip(table.stage, table.seeds) if n > 0]  # not the missing rungs
    counts = [n for _, n in trained]
    usual = max(sorted(set(counts)), key=counts.count)
    others = [f"{stage} {n}" for stage, n in trained if n != usual]
    return f"{usual} seed{'s' if usual != 1 else ''} a rung" + (f" ({', '.join(others)})" if others else "")


def print_ladder(table: pd.DataFrame) -> None:
    """The table's main columns on stdout."""
    columns = ["stage", "params", "seeds", "val_loss_mean", "val_loss_std", "delta", "ci_low", "ci_high", "verdict"]
    print(f"\n{to_markdown(table[columns])}")
