"""The report of a results folder, assembled: the ladder's (write_report) and a study's (write_study_report).

Each piece is drawn by the module whose concern it is, from what common.results read of the folder's
saved runs (`runs/<stage>/seed<N>/run.json`, `curve.csv`, `sample.txt`), so a report can always be
redrawn and checked:

    ladder.csv, ladder.md    common.ladder      the table and its page
    loss_ladder.png          common.chart       the chart
    samples.md               common.sampling    every rung's sample
    weights/                 common.weights     one seed's weights per rung, from its checkpoint
    attention/               common.attention   what each attention rung attends to
    studies/<name>/study.*   common.studies     where a piece pays (and common.chart for its chart)

None of them imports another; this module, at the top of the report's floor, hands each what it needs.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from common.errors import LadderError
from common.profiles import Profile


def write_ladders(folder: Path, profile: Profile, ladders: Mapping[str, Mapping[str, Any]],
                  overrides: Mapping[str, Any] | None = None, about: Mapping[str, str] | None = None) -> None:
    """The report of every ladder with runs in `folder`: the first ladder's in the folder itself, each other's in
    a subfolder named after it (results/cpu/modern/), its runs shared in `folder`/runs. A ladder is reported
    once a rung of its own (not of an earlier ladder) has runs: training only modern rungs into a fresh folder
    reports the modern ladder alone."""
    from common.results import has_runs
    earlier: set[str] = set()
    for i, (name, stages) in enumerate(ladders.items()):
        own = [stage for stage in stages if stage not in earlier]
        earlier.update(stages)
        if has_runs(folder, own):
            write_report(folder, profile, stages, overrides, out=None if i == 0 else Path(folder) / name,
                         title="Loss ladder" if i == 0 else f"The {name} ladder", about=(about or {}).get(name, ""))


def write_report(folder: Path, profile: Profile, stages: Mapping[str, Any],
                 overrides: Mapping[str, Any] | None = None, out: Path | None = None,
                 title: str = "Loss ladder", about: str = "") -> None:
    """Write the table, chart, samples page and attention maps of the ladder `stages` from the runs saved in
    `folder`, into `out` (the folder itself by default), and print the table. The weights files go beside the
    runs they come from, in `folder`, where sampling finds them.

    stages: the ladder in order, each with `adds` and `lecture_val_loss` (see common.run.Stage).
    The lecture's numbers are drawn only for the lecture profile without overrides (its setting).
    """
    from common.attention import write_attention
    from common.chart import draw_ladder
    from common.io import write_text
    from common.ladder import ladder_table, print_ladder, seeds_note, stage_info, write_ladder
    from common.profiles import overrides_note
    from common.results import read_results
    from common.sampling import samples_page
    from common.studies import ladder_pointers
    from common.weights import export_weights

    folder = Path(folder)
    out = Path(out or folder)
    read = read_results(folder, list(stages))
    if not read.runs:
        raise LadderError(f"no results in {folder}: train first (python runner.py --profile {profile.name})")
    table = ladder_table(read.runs, list(stages), stage_info(stages))
    pointers = ladder_pointers(folder, table)  # rungs that did not help here, where a study shows them helping
    write_ladder(out, table, read.runs, profile, overrides, pointers, title, about)
    name = "GPT Ladder" if title == "Loss ladder" else f"GPT Ladder, {title.lower()}"  # the default: the first ladder
    draw_ladder(table, read.curves, out / "loss_ladder.png",
                title=f"{name}, profile '{profile.name}'{overrides_note(overrides, ', ')}: {len(read.runs)} runs, "
                      f"{seeds_note(table)}, {read.runs[0]['device_name']}",
                show_lecture=profile.name == "lecture" and not overrides, notes=pointers)
    write_text(out / "samples.md", samples_page(read.shown, profile))
    export_weights(folder, read.shown)
    print_ladder(table)
    print(f"wrote {out}/ladder.csv, ladder.md, loss_ladder.png, samples.md, "
          f"{'weights/' if out == folder else f'and {folder}/weights/'}")
    write_attention(folder, profile.name, stages, out)  # attention/: the maps and per-head summary of every attention rung


def no_study_runs(folder: Path, study, profile: Profile) -> str:
    """What to say when a study has nothing trained in its folder: the command that trains it."""
    from common.run import same_options
    from common.studies import study_command
    return (f"no runs of study {study.name} in {folder}: train it first (python runner.py {study_command(study)} "
            f"--profile {profile.name}{same_options(folder.parent.parent, profile.name)})")


def redraw_study(folder: Path, study, profile: Profile, report: Callable[[], None], skip_missing: bool) -> bool:
    """--chart for a study: report() from its saved runs, under the folder's lock; True if drawn. A study with no
    finished run gets no folder made for it: an error, or with skip_missing (--study all) a line, and False."""
    from common.jobs import FolderLock, check_writable
    if not any(folder.rglob("run.json")):
        if not skip_missing:
            raise LadderError(no_study_runs(folder, study, profile))
        print(f"study {study.name}: nothing trained in {folder}, skipped", file=sys.stderr)
        return False
    check_writable(folder)
    with FolderLock(folder):
        report()
    return True


def write_study_report(folder: Path, study, profile: Profile, overrides: Mapping[str, Any] | None = None):
    """study.csv, study.md and study.png of a study folder (common.studies.Study), from its saved runs; returns
    the table."""
    from common.chart import draw_study
    from common.io import write_text
    from common.studies import (crossovers, divergence_note, study_markdown, study_note, study_runs, study_table,
                                study_title)

    points = study_runs(folder, study)
    # each run once: a baseline shared by every point (modern-left-out's top rung) is one set of runs, not one per point
    runs = list({r["_dir"]: r for _, base, rung in points for r in base + rung}.values())
    if not runs:
        raise LadderError(no_study_runs(folder, study, profile))
    table = study_table(study, points)
    note = study_note(profile, overrides or {}, runs)
    write_text(folder / "study.csv", table.to_csv(index=False, float_format="%.4f"))
    write_text(folder / "study.md", study_markdown(table, study, note, divergence_note(study, points)))
    draw_study(table, folder / "study.png", study_title(study, note), setting=study.setting, rung=study.rung,
               against=study.against, crossovers=crossovers(table))
    return table
