"""Regime studies: where a piece of the ladder pays, and where it does not, measured.

A study is data, like a profile: the rung studied, what it is compared against (the rung before it,
or the same rung with one setting changed), the setting swept and its values (chosen before the
runs and all reported), the profile and the seeds. Every point of the sweep trains both sides with
the ladder's own machinery (saved runs reused, --resume, Ctrl-C, parallel workers, the progress bar)
into a folder of its own, named by what it changes:

    <results>/<profile>/studies/<name>/points/<setting>=<value>[,<setting>=<value>]/runs/<stage>/seed<N>/

and the study's table compares the two sides at every point by the ladder's rule (Welch's 95%
interval of the change in mean validation loss; a diverged side called what it is): study.csv,
study.md and study.png beside `points/`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

from common.errors import LadderError

if TYPE_CHECKING:
    import pandas as pd

STUDY_COLUMNS = ["value", "label", "train_chars_used", "baseline_seeds", "baseline_mean", "baseline_std", "baseline_diverged",
                 "rung_seeds", "rung_mean", "rung_std", "rung_diverged", "delta", "ci_low", "ci_high", "p_value",
                 "verdict"]


@dataclass(frozen=True)
class Study:
    name: str
    question: str  # what the study asks, in one line
    rung: str  # the stage whose piece is studied
    baseline: str  # the stage it is compared against: the rung before it, or the rung itself ...
    setting: str  # the setting swept
    values: tuple  # its values, chosen before the runs; every one is reported
    baseline_set: Mapping[str, Any] = field(default_factory=dict)  # ... with these settings changed
    profile: str = "cpu"
    seeds: tuple[int, ...] = (0, 1, 2)

    def sides(self, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The settings of (baseline, rung) at one value of the sweep (baseline_set may hold the swept
        setting: the baseline then stays at its value while the rung's moves, as in modern-steps)."""
        return {self.setting: value, **self.baseline_set}, {self.setting: value}

    def stages(self, value: Any) -> tuple[str, str]:
        """The stages of (baseline, rung) at one value of the sweep."""
        return self.baseline, self.rung

    @property
    def against(self) -> str:
        """The baseline in words: 'layernorm', or 'residual with residual=False'."""
        changed = ", ".join(f"{k}={v}" for k, v in self.baseline_set.items())
        return f"{self.baseline} with {changed}" if changed else self.baseline


def study_command(study: Study) -> str:
    """The runner options that train a study: --study NAME for a named one, the --sweep options for one's own."""
    if study.name in STUDIES:
        return f"--study {study.name}"
    def text(value: Any) -> str:  # as the command line writes it: true, not True
        return str(value).lower() if isinstance(value, bool) else str(value)
    return (f"--sweep {study.setting}={','.join(map(text, study.values))} --stage {study.rung} --baseline "
            f"{study.baseline}" + "".join(f" --baseline-set {k}={text(v)}" for k, v in study.baseline_set.items()))


@dataclass(frozen=True)
class LeaveOneOut(Study):
    """The rung against itself with one of its pieces switched off, a piece per point: `values` are the
    pieces' switches (each rung of the modern ladder has one, e.g. `rope`); every setting else as the
    profile has it. delta = the whole rung - the rung without the piece: what the piece is worth at the end."""

    def sides(self, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return {value: False}, {}

    @property
    def against(self) -> str:
        return f"{self.baseline} without the piece"


@dataclass(frozen=True)
class Pieces(Study):
    """Stages against one baseline, a stage per point: `values` are the stages (pieces measured against the
    rung they would join); `rung` names them as a group in the text. Settings as the profile has them."""

    def sides(self, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {}

    def stages(self, value: Any) -> tuple[str, str]:
        return self.baseline, value


def _frozen(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))


# The values were fixed before these studies were run, from the measurements quoted in issue 23
# (residual paths pay at 1 layer and far more at 3; LayerNorm hurt at lr 3e-3 and helped at 1e-2,
# and the residual rung diverged at 2e-2; dropout helped on ~50k training characters and hurt on the
# whole corpus). Each spans both regimes where they exist; all points are reported.
STUDIES: dict[str, Study] = {
    "residual": Study(
        name="residual", question="do residual paths pay more as the stack gets deeper?",
        rung="residual", baseline="residual", baseline_set=_frozen({"residual": False}),
        setting="n_layer", values=(1, 2, 4, 6)),
    "layernorm": Study(
        name="layernorm", question="does LayerNorm pay only at high learning rates?",
        rung="layernorm", baseline="residual", setting="learning_rate", values=(1e-3, 3e-3, 1e-2, 2e-2)),
    "dropout": Study(
        name="dropout", question="does dropout pay only when the model can overfit its training text?",
        rung="dropout", baseline="layernorm", setting="train_chars",
        values=(25_000, 100_000, 300_000, 0)),  # 0: the whole training split (1,003,854 characters)
    # The modern ladder's studies. Their values were fixed before any of their runs, from a first training of
    # the modern ladder (5 seeds a rung, cpu profile): rotary embeddings -0.014 (interval -0.028 .. -0.000) and
    # QK-norm -0.006 (-0.015 .. +0.002) came out within noise, GELU (-0.015) and Muon (-0.055) helped.
    # - rope over max_iters: a learned position table is learned row by row, from the tokens seen at each
    #   position, while a rotation is fixed from the start; rotary positions should pay most when training is short.
    # - qk_norm over the learning rate: QK-norm exists to keep attention scores bounded when the weights grow
    #   fast (OLMo 2, ViT-22B); it should pay at learning rates above the profile's 1e-2.
    # - modern-steps: the final modern rung at fewer steps (each with its own schedule) against the lecture's
    #   GPT (layernorm) at the profile's 2,000: where the 2025 GPT matches it.
    # - modern-leave-one-out: the final rung without each of its pieces.
    # - modern-left-out: the pieces left out of the modern ladder, each against the top rung it would join.
    "rope": Study(
        name="rope", question="do rotary positions pay most when training is short?",
        rung="rope", baseline="gelu", setting="max_iters", values=(500, 1000, 2000)),
    "qk_norm": Study(
        name="qk_norm", question="does QK-norm pay at higher learning rates?",
        rung="qk_norm", baseline="muon", setting="learning_rate", values=(1e-2, 3e-2, 1e-1)),
    "modern-steps": Study(
        name="modern-steps", question="in how many steps does the 2025 GPT match the lecture's GPT at 2,000?",
        rung="qk_norm", baseline="layernorm", baseline_set=_frozen({"max_iters": 2000}), setting="max_iters",
        values=(500, 1000, 1500, 2000)),
    "modern-leave-one-out": LeaveOneOut(
        name="modern-leave-one-out", question="which pieces of the final modern rung matter at the end?",
        rung="qk_norm", baseline="qk_norm", setting="without", values=("gelu", "rope", "muon", "qk_norm")),
    "modern-left-out": Pieces(
        name="modern-left-out", question="do the pieces left out of the modern ladder pay on top of it?",
        rung="each piece", baseline="qk_norm", setting="piece",
        values=("rmsnorm", "swiglu", "no_bias", "relu2", "zero_init", "softcap", "tied")),
    # Two pieces left out, each in the regime its stage file's reason points to; values fixed before any run
    # of these two studies, after modern-left-out found every piece within noise at the profile's settings
    # (lr 1e-2, 3 layers: those points are in modern-left-out, so they are not trained again here):
    # - softcap over the learning rate: a capped logit cannot grow without bound, which should keep training
    #   steadier when the weights move fast; the values are the qk_norm study's two above the profile's.
    # - zero_init over the depth: a stack whose blocks start as the identity starts shallow (ReZero, Fixup); it
    #   should pay in a deeper stack. 1 layer (a control: one block, no depth to start without) and 6 (twice the
    #   profile's; a 6-layer run takes about twice a 3-layer one, so 12 would not fit the 10-minute study).
    "softcap": Study(
        name="softcap", question="does logit soft-capping pay at higher learning rates?",
        rung="softcap", baseline="qk_norm", setting="learning_rate", values=(3e-2, 1e-1)),
    "zero_init": Study(
        name="zero_init", question="do zero-initialised output projections pay in a deeper stack?",
        rung="zero_init", baseline="qk_norm", setting="n_layer", values=(1, 6)),
}


def get_study(name: str) -> Study:
    try:
        return STUDIES[name]
    except KeyError:
        raise LadderError(f"unknown study {name!r}: choose one of {', '.join(STUDIES)} (or all)") from None


def study_folder(profile_folder: Path, name: str) -> Path:
    return Path(profile_folder) / "studies" / name


def point_label(settings: Mapping[str, Any]) -> str:
    """A point's folder name: its settings as name=value, comma-separated (e.g. n_layer=2,residual=False)."""
    return ",".join(f"{k}={v}" for k, v in settings.items()) or "profile"  # "profile": every setting the profile's


def point_folders(folder: Path, study: Study, value: Any) -> tuple[Path, Path]:
    """The results folders of (baseline, rung) at one value (the same when only the stage differs)."""
    base, rung = study.sides(value)
    return folder / "points" / point_label(base), folder / "points" / point_label(rung)


def parse_sweep(text: str) -> tuple[str, list[str]]:
    """'learning_rate=1e-3,3e-3,1e-2' -> ('learning_rate', ['1e-3', '3e-3', '1e-2'])."""
    name, sep, values = text.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not name.strip() or len(items) < 2:
        raise LadderError(f"--sweep {text!r} is not of the form name=value,value,... with at least two values "
                          f"(e.g. --sweep learning_rate=1e-3,3e-3,1e-2)")
    if len(set(items)) != len(items):
        raise LadderError(f"--sweep {text!r} repeats a value: give each value once")
    return name.strip().replace("-", "_"), items


def sweep_study(rung: str, baseline: str, setting: str, values: list[Any], baseline_set: Mapping[str, Any],
                profile: str, seeds: tuple[int, ...]) -> Study:
    """A study made on the command line (--sweep), named after what it compares."""
    if setting in baseline_set:
        raise LadderError(f"--baseline-set changes {setting}, the setting being swept: the two sides would differ "
                          f"in more than one thing; sweep another setting or leave it out of --baseline-set")
    if baseline == rung and not baseline_set:
        raise LadderError(f"--sweep compares {rung} with itself: give --baseline STAGE (another rung) or "
                          f"--baseline-set NAME=VALUE (the same rung with one setting changed)")
    changed = "".join(f"-{k}={v}" for k, v in baseline_set.items())
    name = f"sweep-{rung}-vs-{baseline}{changed}-over-{setting}"
    return Study(name=name, question=f"{rung} against {baseline} over {setting}", rung=rung, baseline=baseline,
                 setting=setting, values=tuple(values), baseline_set=_frozen(baseline_set), profile=profile,
                 seeds=seeds)


def choose_studies(names: list[str], sweep: str | None, stage: list[str] | None, baseline: str | None,
                   baseline_set: list[str], profile, overrides: Mapping[str, Any], stages: Mapping[str, Any],
                   seeds: tuple[int, ...] | None, before: Mapping[str, str | None] | None = None) -> list[Study]:
    """The studies a command names (--study), or the one it describes (--sweep, --stage, --baseline,
    --baseline-set), with --seeds applied; every mistake is one LadderError. `before` gives the stage each
    is measured against by default (default: the one before it in `stages`)."""
    import dataclasses

    from common.profiles import parse_overrides
    if sweep:
        if names or not stage or len(stage) != 1:
            raise LadderError("--sweep needs exactly one --stage (the rung studied) and no --study, e.g. "
                              "--sweep learning_rate=1e-3,1e-2 --stage layernorm")
        rung, order = stage[0], list(stages)
        before = before or {name: (order[i - 1] if i else None) for i, name in enumerate(order)}  # the rung before
        setting, texts = parse_sweep(sweep)
        classes = [s.Config for s in stages.values()]
        values = [parse_overrides([f"{setting}={text}"], classes, "--sweep")[setting] for text in texts]
        changed = parse_overrides(baseline_set, classes, "--baseline-set")
        baseline = baseline or (rung if changed else before[rung])
        if baseline is None:
            raise LadderError(f"{rung} is the first rung: give --baseline STAGE or --baseline-set NAME=VALUE")
        chosen = [sweep_study(rung, baseline, setting, values, changed, profile.name, seeds or (0, 1, 2))]
    else:
        if stage or baseline or baseline_set:
            raise LadderError("--study trains what the study names: leave out --stage, --baseline and "
                              "--baseline-set (for a study of your own, use --sweep)")
        chosen = [dataclasses.replace(get_study(n), seeds=seeds or get_study(n).seeds) for n in names]
    clash = [study.setting for study in chosen if study.setting in overrides]
    if clash:
        raise LadderError(f"--set {clash[0]}=... changes the setting the study sweeps: leave it out")
    return chosen


def study_tasks(study: Study, folder: Path, options) -> list[tuple]:
    """Every run of a study, as (stage, seed, options) with the point's settings and folder."""
    import dataclasses
    tasks, seen = [], set()
    for value in study.values:
        for stage, side, point in zip(study.stages(value), study.sides(value), point_folders(folder, study, value)):
            if (stage, point) in seen:  # a side several points share (one baseline for all): trained once
                continue
            seen.add((stage, point))
            run_options = dataclasses.replace(options, overrides={**options.overrides, **side}, folder=str(point))
            tasks += [(stage, seed, run_options) for seed in study.seeds]
    return tasks


def print_study(table: "pd.DataFrame", study: Study, folder: Path) -> None:
    from common.markdown import to_markdown
    columns = ["label", "baseline_mean", "rung_mean", "delta", "ci_low", "ci_high", "verdict"]
    print(f"\nstudy {study.name}: {study.rung} against {study.against} over {study.setting}\n"
          f"{to_markdown(table[columns].rename(columns={'label': study.setting}))}")
    print(f"wrote {folder}/study.csv, study.md, study.png")


def _side(runs: list[Mapping[str, Any]]) -> dict[str, Any]:
    """One side of a point as compare() reads a rung (common.verdicts.summarise)."""
    import pandas as pd

    from common.verdicts import run_diverged, summarise
    return summarise(pd.Series([r["final"]["val_loss"] for r in runs], dtype=float),
                     sum(run_diverged(r) for r in runs))


def study_words(verdict: str) -> str:
    """A ladder verdict in a study's words: 'helped: the rung before diverged' -> '... the baseline diverged'."""
    return verdict.replace("the rung before", "the baseline")


def study_row(value: Any, baseline_runs: list, rung_runs: list) -> dict[str, Any]:
    """One point of a study: both sides and the change from baseline to rung, by the ladder's rule."""
    from common.verdicts import MISSING, compare
    base, rung = _side(baseline_runs), _side(rung_runs)
    step = {**rung, "delta": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
            "p_value": float("nan"), "verdict": MISSING}
    if base["seeds"] and rung["seeds"]:
        compare(step, base)
        step["verdict"] = study_words(step["verdict"])
    used = [r.get("train_chars_used") for r in rung_runs + baseline_runs if r.get("train_chars_used")]
    return {"value": value, "train_chars_used": used[0] if used else float("nan"),
            "baseline_seeds": base["seeds"], "baseline_mean": base["val_loss_mean"],
            "baseline_std": base["val_loss_std"], "baseline_diverged": base["diverged"],
            "rung_seeds": rung["seeds"], "rung_mean": rung["val_loss_mean"], "rung_std": rung["val_loss_std"],
            "rung_diverged": rung["diverged"], **{k: step[k] for k in ("delta", "ci_low", "ci_high", "p_value",
                                                                        "verdict")}}


def study_runs(folder: Path, study: Study) -> list[tuple[Any, list, list]]:
    """The saved runs of a study folder: (value, baseline runs, rung runs) per value, in the study's order."""
    from common.results import load_runs
    loaded: dict[tuple[Path, str], list] = {}  # a baseline every point shares (modern-left-out's top rung): read once

    def runs_of(runs_folder: Path, stage: str) -> list:
        if (runs_folder, stage) not in loaded:
            loaded[runs_folder, stage] = load_runs(runs_folder, [stage])
        return loaded[runs_folder, stage]

    points = []
    for value in study.values:
        base_folder, rung_folder = point_folders(folder, study, value)
        base_stage, rung_stage = study.stages(value)
        points.append((value, runs_of(base_folder, base_stage), runs_of(rung_folder, rung_stage)))
    return points


def study_table(study: Study, points: list[tuple[Any, list, list]]) -> pd.DataFrame:
    """The study's table, one row per value, from its runs (study_runs)."""
    import pandas as pd
    rows = []
    for value, base, rung in points:
        row = study_row(value, base, rung)
        row["label"] = value_text(value, row["train_chars_used"] if study.setting == "train_chars" else None)
        rows.append(row)
    return pd.DataFrame(rows, columns=STUDY_COLUMNS)


def measured(verdict: Any) -> bool:
    """Whether a point's verdict was measured by Welch's rule: exactly helped, hurt or within noise (not a
    diverged side's 'helped: the baseline diverged', nor 'too few seeds')."""
    from common.verdicts import VERDICTS
    return verdict in VERDICTS


def crossovers(table: pd.DataFrame) -> list[tuple[str, str]]:
    """Labels of neighbouring values (in the study's order) that both have a measured verdict, one helped and
    the other not: where the piece starts or stops paying. A point where a side diverged is never one, nor
    are the neighbours of a study whose values have no order (pieces by name)."""
    if "value" in table.columns and any(isinstance(value, str) for value in table.value):
        return []
    return [(table.label.iloc[i], table.label.iloc[i + 1]) for i in range(len(table) - 1)
            if measured(table.verdict.iloc[i]) and measured(table.verdict.iloc[i + 1])
            and (table.verdict.iloc[i] == "helped") != (table.verdict.iloc[i + 1] == "helped")]


def loss_text(value: float) -> str:
    """A final loss as a reader wants it: 1.812, 4.2e8 for a diverged one, NaN."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else f"{value}"
    if abs(value) < 1e4:
        return f"{value:.3f}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def divergence_note(study: Study, points: list[tuple[Any, list, list]]) -> str:
    """Where a side diverged and how large its final validation losses were, in words ('' where none did)."""
    from common.verdicts import run_diverged
    said = []
    for value, base, rung in points:
        sides = []
        for name, runs in (("baseline", base), ("rung", rung)):
            gone = [r for r in sorted(runs, key=lambda r: r["seed"]) if run_diverged(r)]
            if not gone:
                continue
            kept = [loss_text(r["final"]["val_loss"]) for r in runs if not run_diverged(r)]
            sides.append(f"the {name} in {len(gone)} of {len(runs)} seeds (final validation loss"
                         f"{'es' if len(gone) > 1 else ''} {', '.join(loss_text(r['final']['val_loss']) for r in gone)}"
                         + (f"; the other{'s' if len(kept) > 1 else ''} ended at {', '.join(kept)}" if kept else "")
                         + ")")
        if sides:
            said.append(f"at {study.setting} {value_text(value)}, {' and '.join(sides)}")
    return ("Diverged: " + "; ".join(said) + ". A diverged side has no mean (left blank in the table): its "
            "losses say only that the run blew up.\n") if said else ""


def value_text(value: Any, used: Any = None) -> str:
    """A swept value as a reader wants it: 1e-2 as 0.01, 100000 as 100,000, train_chars 0 as 'all'."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        if value == 0 and used is not None and not (isinstance(used, float) and math.isnan(used)):
            return f"all ({int(used):,})"
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _md_cell(row: Mapping[str, Any], column: str, setting: str) -> str:
    import pandas as pd

    from common.markdown import format_cell
    value = row[column]
    if column.endswith("_mean") or column.endswith("_std"):  # a diverged side has none (common.verdicts.summarise)
        return "" if pd.isna(value) else (f"{value:.3f}" if abs(value) < 1e4 else f"{value:.3g}")
    return format_cell(value, "seeds" if column.endswith(("_seeds", "_diverged")) else column)


def study_markdown(table: pd.DataFrame, study: Study, note: str, diverged: str = "") -> str:
    """study.md: what is asked, what is compared, the table, where the verdict turns, and where a side diverged
    (`diverged`: divergence_note's words)."""
    from common.verdicts import DIVERGED_RISE
    columns = [c for c in STUDY_COLUMNS if c not in ("value", "train_chars_used")]
    header = "| " + " | ".join([study.setting if c == "label" else c for c in columns]) + " |"
    rule = "|" + "|".join("---" if c in ("label", "verdict") else "---:" for c in columns) + "|"
    body = ["| " + " | ".join(_md_cell(row, c, study.setting) for c in columns) + " |" for _, row in table.iterrows()]
    turns = crossovers(table)
    where = "; ".join(f"between {a} and {b}" for a, b in turns) if turns else "none"
    helped = [label for label, verdict in zip(table.label, table.verdict) if verdict == "helped"]
    unmeasured = [label for label, verdict in zip(table.label, table.verdict) if not measured(verdict)]
    return "\n".join([
        f"# Study `{study.name}` — {study.question}\n",
        f"`{study.rung}` against `{study.against}`, over `{study.setting}` = {', '.join(table.label)}. {note}\n",
        f"delta = mean validation loss of `{study.rung}` - that of `{study.against}` (negative: the piece helped). "
        "Verdicts by the ladder's rule (docs/verdicts-and-profiles.md). A diverged side (a final loss not finite, or a training loss "
        f"worse than the uniform guess while the validation loss ended more than {DIVERGED_RISE} above its best) has no "
        "mean to test: its "
        "mean is left blank, its diverged seeds are counted, and the verdict says what happened.\n",
        header, rule, *body, "",
        f"Helped (measured) at: {', '.join(helped) or 'no value'}. Crossover: {where} (a crossover lies between "
        f"neighbouring values that both have a measured verdict, helped at one and not at the other"
        + (f"; no verdict is measured at {', '.join(unmeasured)}" if unmeasured else "") + ").\n",
        *([diverged] if diverged else [])])


def study_note(profile, overrides: Mapping[str, Any], runs: list[Mapping[str, Any]]) -> str:
    """The fixed settings and the machine, for the table's header and the chart's title."""
    from common.profiles import overrides_note
    seconds = sum(r["train_seconds"] for r in runs)
    device = runs[0]["device_name"] if runs else "no runs yet"
    return (f"Profile `{profile.name}`{overrides_note(overrides, ', ')}; every other setting as the profile "
            f"has it. {len(runs)} runs on {device}, {seconds / 60:.1f} min of training in all.")


def study_title(study: Study, note: str) -> str:
    """The study chart's title: the question, then the profile and overrides (the note's first sentence)."""
    subtitle = note.split(". ")[0].replace("`", "'")
    return f"Study '{study.name}': {study.question}\n{subtitle}; {len(study.seeds)} seeds per side and point"


def studies_the_step(study: Study, ladder: list[str]) -> bool:
    """Whether a study measures a ladder's step into its rung in another regime: the rung against the rung
    before it in this ladder, or against itself with a setting changed (the residual study), over a setting
    both sides share (not modern-steps, whose baseline holds its steps, nor the studies of pieces)."""
    if type(study) is not Study or study.setting in study.baseline_set or study.rung not in ladder:
        return False
    i = ladder.index(study.rung)
    return (i > 0 and study.baseline == ladder[i - 1]) or (study.baseline == study.rung and bool(study.baseline_set))


def ladder_pointers(profile_folder: Path, table: pd.DataFrame) -> dict[str, str]:
    """For each ladder rung whose verdict is not 'helped' and that a saved study shows helping somewhere (a
    measured 'helped', or training where the baseline diverged): a few words saying where (e.g. 'hurt here;
    helped at train_chars 25,000, 100,000 (studies/dropout)')."""
    import pandas as pd

    from common.verdicts import CURED
    notes = {}
    stages = list(table.stage)
    for name, study in STUDIES.items():
        path = study_folder(profile_folder, name) / "study.csv"
        rows = table[table.stage == study.rung]
        if not rows.empty and not studies_the_step(study, stages):
            continue  # it measures something else of this rung (its pieces at the end, its steps)
        verdict = "" if rows.empty else str(rows.verdict.iloc[0])
        if not path.exists() or not verdict or verdict == "nan" or verdict.startswith("helped"):
            continue  # not in this ladder, its first row (no step to judge), or it helped here
        try:
            saved = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError):
            continue
        helped = [str(label) for label, verdict in zip(saved.label, saved.verdict) if verdict == "helped"]
        rescued = [str(label) for label, verdict in zip(saved.label, saved.verdict) if verdict == study_words(CURED)]
        said = ([f"helped at {study.setting} {', '.join(helped)}"] if helped else []) + (
            [f"trained where the baseline diverged, at {study.setting} {', '.join(rescued)}"] if rescued else [])
        if said:
            notes[study.rung] = f"{verdict} here; {'; '.join(said)} (studies/{name})"
    return notes
