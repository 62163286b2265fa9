"""Reading a results folder: its runs' records (those of one experiment), and their curves.

A results folder holds `runs/<stage>/seed<N>/run.json`, `curve.csv` and `sample.txt`, as each run
wrote them (common.run). Everything the report draws (the table, the chart, the samples page, the
weights, the attention maps, the studies) starts from what this module reads; it imports nothing
of theirs, so it sits at the bottom of the report's floor.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from common.fingerprint import current_code


def has_results(folder: Path) -> bool:
    return any(folder.glob("runs/*/seed*/run.json"))


def has_runs(folder: Path, stage_names) -> bool:
    """Whether any of these stages has a saved run in the folder."""
    return any(any(Path(folder).glob(f"runs/{stage}/seed*/run.json")) for stage in stage_names)


def load_runs(folder: Path, stage_names) -> list[dict[str, Any]]:
    """The readable run.json records of the folder's stages, each with its folder under '_dir' and its curve.csv
    and sample.txt, read once, under '_curve' and '_sample': those of one experiment, the newest run's
    (one_experiment)."""
    from common.io import read_json
    runs = []
    for path in sorted(folder.glob("runs/*/seed*/run.json")):
        try:
            record = read_json(path)
        except (OSError, ValueError):
            print(f"skipping unreadable {path}", file=sys.stderr)
            continue
        if not is_run_record(record):
            print(f"skipping {path}: not a finished run's record (retrain it with --force)", file=sys.stderr)
            continue
        if record["stage"] not in stage_names:
            continue
        try:
            record["_curve"], record["_sample"] = read_run_files(path.parent)
        except RunFileError as exc:
            print(f"skipping {path.parent}: its {exc} cannot be read (retrain it with --force)", file=sys.stderr)
            continue
        record["_dir"] = path.parent
        runs.append(record)
    return one_experiment(runs, folder)


class RunFileError(Exception):
    """A file beside a run's record that the report reads and cannot; its message is the file's name."""


def read_run_files(run_folder: Path):
    """(curve.csv as a table, sample.txt as text) of a run: the chart's curves and the samples page's text."""
    import pandas as pd
    try:
        curve = pd.read_csv(run_folder / "curve.csv")
    except (OSError, ValueError):  # missing, empty or not a table
        raise RunFileError("curve.csv") from None
    if curve.empty or not {"step", "val_loss"} <= set(curve.columns):
        raise RunFileError("curve.csv")
    try:
        return curve, (run_folder / "sample.txt").read_text(encoding="utf-8")
    except (OSError, ValueError):  # missing, or not UTF-8
        raise RunFileError("sample.txt") from None


def experiment_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a run shares with every run of its experiment: code (the checkout's for its stage, or another),
    corpus, precision asked, and its settings but for those its profile gives its stage alone (scaled's size,
    the lecture's bigram learning rate)."""
    from common.profiles import PROFILES
    settings = record.get("settings") if isinstance(record.get("settings"), dict) else {}
    profile = PROFILES.get(record.get("profile"))
    own = profile.stage_overrides.get(record["stage"], {}) if profile else {}
    model = record.get("model_config") if isinstance(record.get("model_config"), dict) else {}
    n_train = None if settings.get("train_chars") else record.get("train_chars_used")  # the training split's size
    code = record.get("code")  # this checkout's code for its stage, or the other code that made it
    return {"code": "current" if code is not None and code == current_code(record["stage"]) else code,
            "corpus": (model.get("vocab_size"), n_train),
            "precision": settings.get("precision", "auto"),
            "settings": {k: v for k, v in settings.items() if k not in own}}


def differences(record: Mapping[str, Any], reference: Mapping[str, Any]) -> list[str]:
    """How a run's experiment differs from the reference run's, in words (empty: the same experiment)."""
    mine, theirs = experiment_of(record), experiment_of(reference)
    said = [f"{k} {v!r}, not {theirs['settings'][k]!r}" for k, v in mine["settings"].items()
            if k in theirs["settings"] and theirs["settings"][k] != v]
    if mine["precision"] != theirs["precision"]:
        said.append(f"precision {mine['precision']}, not {theirs['precision']}")
    if mine["corpus"] != theirs["corpus"]:
        sizes = [f"{a:,} {what}, not {b:,}" if isinstance(a, int) and isinstance(b, int) else f"{what}: {a}, not {b}"
                 for a, b, what in zip(mine["corpus"], theirs["corpus"], ("distinct characters", "to train on"))
                 if a != b]
        said.append(f"another corpus ({'; '.join(sizes)})")
    if mine["code"] != theirs["code"]:
        said.append("other code")
    return said


def one_experiment(runs: list[dict[str, Any]], folder: Path) -> list[dict[str, Any]]:
    """The runs of one experiment: the newest run's. The others are skipped with one line naming them, so
    that a table never compares runs on other data, settings or code (a folder holds one experiment)."""
    if not runs:
        return runs
    newest = max(runs, key=lambda r: (str(r.get("finished_at", "")), str(r["_dir"])))
    kept, skipped, why = [], {}, []
    for record in runs:
        said = differences(record, newest)
        if not said:
            kept.append(record)
            continue
        skipped.setdefault(record["stage"], []).append(record["seed"])
        why += [s for s in said if s not in why]
    if skipped:
        count = sum(map(len, skipped.values()))
        names = ", ".join(f"{stage} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, sorted(seeds)))})"
                          for stage, seeds in skipped.items())
        print(f"skipping {count} run{'s' if count > 1 else ''} of another experiment in {folder}: {names}, made "
              f"with {'; '.join(why)} (the table holds one experiment, its newest run's): retrain them with "
              f"--force, or train that experiment into another --out", file=sys.stderr)
    return kept


def is_run_record(record: Any) -> bool:
    """Whether a run.json holds what the report reads (a finished run of this tool)."""
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    return (isinstance(record, dict) and isinstance(record.get("stage"), str) and isinstance(record.get("seed"), int)
            and number(record.get("params")) and number(record.get("train_seconds"))
            and isinstance(record.get("device_name"), str)
            and all(isinstance(record.get(k), dict) and number(record[k].get("val_loss")) and number(record[k].get("step"))
                    for k in ("final", "best"))
            and number(record["final"].get("train_loss")))


def mean_curves(runs: list[dict[str, Any]], stage_names) -> dict[str, Any]:
    """Per stage: the validation curve's mean, min and max over seeds, by step."""
    import pandas as pd
    curves = {}
    for stage in stage_names:
        frames = [r["_curve"] for r in runs if r["stage"] == stage]
        merged = pd.concat(frames).groupby("step").val_loss
        curves[stage] = pd.DataFrame({"val_loss": merged.mean(), "val_min": merged.min(),
                                      "val_max": merged.max()}).reset_index()
    return curves


def lowest_seed(runs: list[dict[str, Any]], stage: str) -> dict[str, Any]:
    """The record of a stage's lowest seed among `runs` (the one whose sample and weights are shown)."""
    return min((r for r in runs if r["stage"] == stage), key=lambda r: r["seed"])


@dataclass(frozen=True)
class Results:
    """What the report draws from, read once (read_results)."""

    runs: list[dict[str, Any]]  # the records of one experiment (load_runs), each with its folder under '_dir'
    present: list[str]  # the ladder's stages that have runs, in ladder order
    curves: dict[str, Any]  # per stage of `present`: its validation curve over seeds (mean_curves)
    shown: dict[str, dict[str, Any]]  # per stage of `present`: its lowest seed's record, whose sample and weights
    #                                   the report shows


def read_results(folder: Path, stage_names) -> Results:
    """Everything the ladder's report reads of a results folder (no runs: Results with empty lists)."""
    runs = load_runs(folder, stage_names)
    present = [stage for stage in stage_names if any(r["stage"] == stage for r in runs)]
    return Results(runs, present, mean_curves(runs, present) if runs else {},
                   {stage: lowest_seed(runs, stage) for stage in present})
