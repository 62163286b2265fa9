"""The report of a results folder, from its saved runs: ladder.csv/.md, loss_ladder.png, samples.md.

Everything here is drawn from the files the runs wrote (`runs/<stage>/seed<N>/run.json`,
`curve.csv`, `sample.txt`), so a report can always be redrawn and checked.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping

from common.errors import LadderError
from common.profiles import Profile


def overrides_note(overrides: Mapping[str, Any] | None, lead: str = "") -> str:
    """'with --set a=1 b=2' for a title or header, or '' without overrides."""
    if not overrides:
        return ""
    text = " ".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    return f"{lead}with --set {text}" if lead else f"Overrides: `{text}`. "


def has_results(folder: Path) -> bool:
    return any(folder.glob("runs/*/seed*/run.json"))


def load_runs(folder: Path, stage_names) -> list[dict[str, Any]]:
    """The readable run.json records of the folder's stages, each with its folder under '_dir': those of one
    experiment, the newest run's (one_experiment)."""
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
        if record["stage"] in stage_names:
            record["_dir"] = path.parent
            runs.append(record)
    return one_experiment(runs, folder)


def experiment_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a run shares with every run of its experiment: code, corpus, precision asked, and its settings but
    for those its profile gives its stage alone (scaled's size, the lecture's bigram learning rate)."""
    from common.profiles import PROFILES
    settings = record.get("settings") if isinstance(record.get("settings"), dict) else {}
    profile = PROFILES.get(record.get("profile"))
    own = profile.stage_overrides.get(record["stage"], {}) if profile else {}
    model = record.get("model_config") if isinstance(record.get("model_config"), dict) else {}
    n_train = None if settings.get("train_chars") else record.get("train_chars_used")  # the training split's size
    return {"code": record.get("code"), "corpus": (model.get("vocab_size"), n_train),
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
        frames = [pd.read_csv(r["_dir"] / "curve.csv") for r in runs if r["stage"] == stage]
        merged = pd.concat(frames).groupby("step").val_loss
        curves[stage] = pd.DataFrame({"val_loss": merged.mean(), "val_min": merged.min(),
                                      "val_max": merged.max()}).reset_index()
    return curves


def samples_page(runs: list[dict[str, Any]], stage_names, profile: Profile) -> str:
    """samples.md: every rung continuing the same prompt (its lowest seed's sample), bigram to scaled."""
    lines = [f"# Samples — profile `{profile.name}`\n",
             "Each rung continues the same prompt for 300 characters (sample seed 0, temperature 1.0), "
             "bigram to scaled, so the improvement reads from top to bottom. These come from each run's "
             "full-precision model; more with "
             f"`python runner.py --sample --stage STAGE --profile {profile.name}`, which samples the bf16 "
             "weights when the checkpoint is not there (the same prompt and seed may then part ways after "
             "a few hundred characters).\n"]
    for stage in stage_names:
        record = min((r for r in runs if r["stage"] == stage), key=lambda r: r["seed"])
        text = (record["_dir"] / "sample.txt").read_text(encoding="utf-8")
        lines.append(f"## {stage} (val loss {record['final']['val_loss']:.3f}, training seed {record['seed']})\n\n"
                     f"```text\n{text.strip()}\n```\n")
    return "\n".join(lines)


def export_weights(folder: Path, runs: list[dict[str, Any]], stage_names) -> None:
    """weights/<stage>.safetensors from each rung's lowest-seed checkpoint, where it is newer than the file.

    A clone without checkpoints keeps the committed weights as they are, and says which are missing or
    from another run than the one the table reports."""
    from common.checkpoint import load_checkpoint
    from common.errors import LadderError
    from common.sampling import MAX_WEIGHTS_BYTES, weights_bytes, weights_key, weights_path
    from common.sampling import export_weights as write_weights
    behind, large = [], []
    for stage in stage_names:
        record = min((r for r in runs if r["stage"] == stage), key=lambda r: r["seed"])
        checkpoint_path, target = record["_dir"] / "checkpoint.pt", weights_path(folder, stage)
        size = weights_bytes(record["params"])
        if size > MAX_WEIGHTS_BYTES:  # decided before reading a checkpoint of that size
            large.append(f"{stage} ({size / 2**20:.1f} MiB)")
            continue
        if weights_key(target) == record["key"]:
            continue
        if not checkpoint_path.exists():
            behind.append(f"{stage} (seed {record['seed']})")
            continue
        try:
            checkpoint = load_checkpoint(checkpoint_path, stage=stage)
        except LadderError as exc:
            print(f"not exporting the weights of {stage}: {exc}", file=sys.stderr)
            continue
        if checkpoint.get("key") == record["key"] and checkpoint.get("complete"):
            write_weights(checkpoint, record, target)
    if large:
        print(f"no weights file for {', '.join(large)}: over the {MAX_WEIGHTS_BYTES // 2**20} MiB a results folder "
              f"keeps in git; sampling reads their checkpoints in {folder / 'runs'}", file=sys.stderr)
    if behind:
        print(f"no fresh weights in {folder / 'weights'} for {', '.join(behind)}: their checkpoints are not here "
              f"(retrain those runs with --force to write them)", file=sys.stderr)


def write_report(folder: Path, profile: Profile, stages: Mapping[str, Any],
                 overrides: Mapping[str, Any] | None = None) -> None:
    """Write the table, chart and samples page of `folder` from its saved runs, and print the table.

    stages: the ladder in order, each with `adds` and `lecture_val_loss` (see common.run.Stage).
    The lecture's numbers are drawn only for the lecture profile without overrides (its setting).
    """
    from common.chart import draw_ladder
    from common.io import write_text
    from common.ladder import VERDICT_RULE, ladder_table, to_markdown
    from common.studies import ladder_pointers

    runs = load_runs(folder, stages)
    if not runs:
        raise LadderError(f"no results in {folder}: train first (python runner.py --profile {profile.name})")
    info = {n: {"adds": s.adds, "lecture_val_loss": s.lecture_val_loss} for n, s in stages.items()}
    table = ladder_table(runs, list(stages), info)
    write_text(folder / "ladder.csv", table.to_csv(index=False, float_format="%.4f"))
    seconds = sum(r["train_seconds"] for r in runs)
    header = (f"# Loss ladder — profile `{profile.name}`\n\n{profile.description}. "
              f"{len(runs)} runs on {runs[0]['device_name']}, {seconds / 60:.1f} min of training in all. "
              f"{overrides_note(overrides)}Verdict rule: {VERDICT_RULE}.\n\n")
    pointers = ladder_pointers(folder, table)  # rungs that did not help here, where a study shows them helping
    notes = "".join(f"\n- `{stage}`: {note}" for stage, note in pointers.items())
    write_text(folder / "ladder.md", header + to_markdown(table)
               + (f"\nWhere a step that did not help here pays, measured:{notes}\n" if notes else ""))
    present = [stage for stage, seeds in zip(table.stage, table.seeds) if seeds > 0]
    draw_ladder(table, mean_curves(runs, present), folder / "loss_ladder.png",
                title=f"GPT Ladder, profile '{profile.name}'{overrides_note(overrides, ', ')}: {len(runs)} runs, "
                      f"{int(table.seeds.max())} seed(s) per stage, {runs[0]['device_name']}",
                show_lecture=profile.name == "lecture" and not overrides, notes=pointers)
    write_text(folder / "samples.md", samples_page(runs, present, profile))
    export_weights(folder, runs, present)
    columns = ["stage", "params", "seeds", "val_loss_mean", "val_loss_std", "delta", "ci_low", "ci_high", "verdict"]
    print(f"\n{to_markdown(table[columns])}")
    print(f"wrote {folder}/ladder.csv, ladder.md, loss_ladder.png, samples.md, weights/")
    from common.attention import write_attention
    write_attention(folder, profile.name, stages)  # attention/: the maps and per-head summary of every attention rung
