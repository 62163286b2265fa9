"""The loss-ladder chart, drawn from the saved results (the table and the per-run curves)."""
from __future__ import annotations

import math
import os
from typing import Mapping

import pandas as pd

COLOURS = {"helped": "#2a9d4b", "within noise": "#8a8a8a", "hurt": "#d1495b"}
OTHER = "#3b6ea8"  # the first rung, and steps without a verdict


def mean_interval(std: float, n: int) -> float:
    """Half-width of the 95% confidence interval of a mean over n seeds (Student's t); 0 below 2 seeds."""
    if n < 2 or pd.isna(std):
        return 0.0
    from scipy import stats
    return float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))


def colour(verdict: str, default: str = OTHER) -> str:
    """The colour of a verdict's family (helped, within noise, hurt), the same in every chart."""
    from common.verdicts import verdict_kind
    return COLOURS.get(verdict_kind(verdict), default)


def _ladder_panel(ax, table: pd.DataFrame, show_lecture: bool, vocab_size: int) -> None:
    """Mean validation loss per rung with its 95% interval, each step labelled with its change and verdict.
    A rung with a diverged seed has no mean worth plotting: it is marked 'diverged' above the others."""
    x = list(range(len(table)))
    diverged = table.diverged.fillna(0) > 0 if "diverged" in table else pd.Series(False, index=table.index)
    _mark_diverged(ax, table, diverged)
    present = (table.seeds > 0) & ~diverged
    half = [mean_interval(s, int(n)) for s, n in zip(table.val_loss_std, table.seeds)]
    xs = [i for i in x if present[i]]
    ax.plot(xs, table.val_loss_mean[present], color=OTHER, alpha=0.35, linewidth=2, zorder=1)
    ax.errorbar(xs, table.val_loss_mean[present], yerr=[half[i] for i in xs], fmt="none", ecolor="black",
                capsize=5, linewidth=1.2, zorder=3)
    colours = [colour(v) for v in table.verdict[present]]
    ax.scatter(xs, table.val_loss_mean[present], s=90, c=colours, edgecolors="black", zorder=4,
               label="val loss: mean over seeds, bar = 95% interval of the mean")
    ax.scatter(xs, table.train_loss_mean[present], s=40, marker="_", color="#444444", linewidths=2, zorder=4,
               label="train loss (mean)")
    values = list(table.val_loss_mean[present] + [half[i] for i in xs]) + list(table.train_loss_mean[present])
    lows = list(table.val_loss_mean[present] - [half[i] for i in xs]) + list(table.train_loss_mean[present])
    lecture = table.lecture_val_loss.where(present)
    if show_lecture and lecture.notna().any():
        ax.scatter([i for i in x if pd.notna(lecture[i])], lecture.dropna(), s=90, marker="D", facecolors="none",
                   edgecolors="#e07b00", linewidths=1.8, zorder=5, label="the lecture's reported val loss")
        values += list(lecture.dropna())
        lows += list(lecture.dropna())
    top, bottom = max(values, default=math.log(vocab_size)), min(lows, default=0.0)
    span = max(top - bottom, 0.05)
    for i, row in table.iterrows():
        if diverged[i]:
            ax.annotate(f"diverged\n({int(row.diverged)} of {int(row.seeds)} seeds)\n{row.verdict}",
                        (i, top + 0.12 * span), ha="center", va="center", fontsize=8.5, color=colour(row.verdict, "black"),
                        fontweight="bold")
            continue
        if not present[i]:
            ax.annotate("missing", (i, bottom + span / 2), ha="center", fontsize=9, color=COLOURS["hurt"])
            continue
        label = f"{row.val_loss_mean:.3f}"
        if row.verdict:
            label = (f"{row.delta:+.3f}\n" if pd.notna(row.delta) else "") + f"{row.verdict}\n" + label
        ax.annotate(label, (i, row.val_loss_mean + half[i]), xytext=(0, 8), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8.5, color=colour(row.verdict, "black"),
                    fontweight="bold" if row.verdict.startswith("hurt") else "normal",
                    bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.8))
    ax.set_xticks(x)
    ax.set_xticklabels(table.stage, rotation=30, ha="right")
    ax.set_ylim(bottom - 0.08 * span, top + 0.30 * span)  # room above for the labels
    ax.set_xlim(-0.6, len(x) - 0.4)
    ax.set_ylabel("validation loss (nats per character, lower is better)")
    ax.set_title(f"The loss ladder (the uniform guess, ln {vocab_size} = {math.log(vocab_size):.2f}, is off the top)"
                 if top < math.log(vocab_size) else "The loss ladder", fontsize=10.5)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8.5, frameon=False)


def _mark_diverged(ax, table: pd.DataFrame, diverged: pd.Series) -> None:
    """Shade the columns of diverged rungs (their labels are drawn with the others)."""
    for i in [i for i in range(len(table)) if diverged[i]]:
        ax.axvspan(i - 0.4, i + 0.4, color=COLOURS["hurt"], alpha=0.08, linewidth=0)


def _curves_panel(ax, table: pd.DataFrame, curves: Mapping[str, pd.DataFrame], vocab_size: int = 65) -> None:
    """Learning curves, one colour per rung (a qualitative palette), band = min..max over seeds."""
    ceiling = math.log(vocab_size) + 0.5  # above the uniform guess: diverged
    import matplotlib.pyplot as plt
    palette = plt.get_cmap("tab10")
    lows = []
    for k, stage in enumerate(table.stage):
        curve = curves.get(stage)
        if curve is None or curve.empty:
            continue
        colour = palette(k % 10)
        ax.plot(curve.step, curve.val_loss, color=colour, linewidth=1.6, label=stage)
        ax.fill_between(curve.step, curve.val_min, curve.val_max, color=colour, alpha=0.15, linewidth=0)
        lows.append(curve.val_min.min())
        late = curve[curve.step >= curve.step.max() * 0.1]  # the first 10% start near ln(vocab): leave it off
        late = late.val_max[late.val_max < ceiling]  # a diverged seed's losses would squash the others
        if not late.empty:
            lows.append(late.max())
    lows = [v for v in lows if math.isfinite(v)]
    if lows:
        ax.set_ylim(min(lows) - 0.05, max(lows) + 0.15)
    ax.set_xlabel("training step")
    ax.set_ylabel("validation loss (nats per character)")
    ax.set_title("Learning curves (mean over seeds, band = min..max)", fontsize=10.5)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=5, fontsize=8.5, frameon=False)


def ladder_figure(table: pd.DataFrame, curves: Mapping[str, pd.DataFrame], title: str, vocab_size: int = 65,
                  show_lecture: bool = True, notes: Mapping[str, str] | None = None):
    """Left: the ladder (mean validation loss per rung, 95% intervals, each step's change and verdict,
    the lecture's values when `show_lecture`, and `notes`: where a rung that did not help here pays,
    from the studies). Right: the learning curves. Returns the figure.

    curves[stage] has columns step, val_loss (mean over seeds), val_min, val_max.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(16, 7.5), gridspec_kw={"width_ratios": [1.35, 1]})
    _ladder_panel(ax, table, show_lecture, vocab_size)
    _curves_panel(ax2, table, curves, vocab_size)
    if notes:  # where a rung that did not help here pays, from the studies
        text = "\n".join(f"{stage}: {note}" for stage, note in notes.items())
        ax.annotate(text, (0.01, 0.01), xycoords="axes fraction", ha="left", va="bottom", fontsize=8.5,
                    color="#333333", bbox=dict(boxstyle="round,pad=0.3", facecolor="#fff7e6", edgecolor="#e07b00"))
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | os.PathLike) -> None:
    """The figure as a PNG at `path` (written atomically), then closed."""
    import matplotlib.pyplot as plt

    from common.io import atomic_path
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def draw_ladder(table: pd.DataFrame, curves: Mapping[str, pd.DataFrame], path: str | os.PathLike, title: str,
                vocab_size: int = 65, show_lecture: bool = True, notes: Mapping[str, str] | None = None) -> None:
    """ladder_figure, saved as a PNG at `path`."""
    save_figure(ladder_figure(table, curves, title, vocab_size, show_lecture, notes), path)


def _study_x(table: pd.DataFrame) -> tuple[list[float], bool]:
    """x positions of a study's values and whether the axis is logarithmic: numbers on their own scale
    (log when they span a factor of 10 or more; train_chars 0, 'all', at the characters it used), other
    values (True/False, names) evenly spaced."""
    values = []
    for value, used in zip(table.value, table.train_chars_used):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return list(range(len(table))), False
        values.append(float(used) if value == 0 and pd.notna(used) else float(value))
    positive = all(v > 0 for v in values)
    return values, positive and max(values) / min(values) >= 10


def _segments(flags: list[bool]) -> list[list[int]]:
    """The runs of consecutive True positions: [[0, 1], [3]] for [T, T, F, T]."""
    runs, current = [], []
    for i, flag in enumerate(flags):
        if flag:
            current.append(i)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def diverged_words(row: pd.Series) -> str:
    """Which side of a study point diverged, in how many seeds: 'baseline diverged (3 of 3 seeds)'."""
    base, rung = (int(n) if pd.notna(n) else 0 for n in (row.baseline_diverged, row.rung_diverged))
    counts = {"baseline": f"{base} of {int(row.baseline_seeds)}", "rung": f"{rung} of {int(row.rung_seeds)}"}
    if base and rung:
        return f"both diverged\n(baseline {counts['baseline']},\nrung {counts['rung']} seeds)"
    side = "baseline" if base else "rung"
    return f"{side} diverged\n({counts[side]} seeds)"


def _mark_study_diverged(ax, xi: float) -> None:
    """A diverged point's column, shaded as the ladder chart shades a diverged rung (the band is in points, so
    it is as wide on a log axis as on a linear one)."""
    ax.axvline(xi, color=COLOURS["hurt"], alpha=0.08, linewidth=28, zorder=0)


def ordered(table: pd.DataFrame) -> bool:
    """Whether a study's values have an order a line may follow (numbers, True/False), not names (pieces)."""
    return not any(isinstance(value, str) for value in table.value)


def _study_delta_panel(ax, table: pd.DataFrame, x: list[float]) -> list:
    """The change from baseline to rung at each value with a measured verdict, its 95% band (broken where a
    point has none), the zero line and verdict colours; a diverged point's column shaded, and said so at its top.
    Returns the labels it placed."""
    from common.verdicts import NOISE_FLOOR
    diverged = [bool(b or r) for b, r in zip(table.baseline_diverged.fillna(0), table.rung_diverged.fillna(0))]
    measured = [pd.notna(low) and not d for low, d in zip(table.ci_low, diverged)]
    if ordered(table):  # a band along the swept values
        for k, run in enumerate(_segments(measured)):
            xs = [x[i] for i in run]
            ax.fill_between(xs, table.ci_low.iloc[run], table.ci_high.iloc[run], color="#3b6ea8", alpha=0.18,
                            linewidth=0, label="95% interval of the change" if k == 0 else None)
            ax.plot(xs, table.delta.iloc[run], color="#3b6ea8", alpha=0.5, linewidth=1.5)
    else:  # values without an order (pieces by name): an interval per point, nothing drawn between them
        points = [i for i in range(len(table)) if measured[i]]
        if points:
            ax.vlines([x[i] for i in points], table.ci_low.iloc[points], table.ci_high.iloc[points], color="#3b6ea8",
                      alpha=0.45, linewidth=6, label="95% interval of the change")
    ax.axhline(0.0, color="black", linewidth=1)
    ax.axhspan(-NOISE_FLOOR, NOISE_FLOOR, color="#8a8a8a", alpha=0.15, linewidth=0)
    spots = [v for i in range(len(table)) if measured[i] for v in (table.ci_low.iloc[i], table.ci_high.iloc[i])]
    top, bottom = max(spots + [0.0]), min(spots + [0.0])
    span = max(top - bottom, 0.02)
    labels = []
    for i, (xi, (_, row)) in enumerate(zip(x, table.iterrows())):
        if measured[i]:
            ax.scatter([xi], [row.delta], s=80, color=colour(row.verdict, OTHER), edgecolors="black", zorder=4)
            labels.append(ax.annotate(f"{row.delta:+.3f}\n{row.verdict}", (xi, row.delta), xytext=(0, 9),
                                      textcoords="offset points", ha="center", va="bottom", fontsize=8,
                                      color=colour(row.verdict, "black"),
                                      bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none",
                                                alpha=0.8)))
            continue
        # no change measured here (a side diverged, or too few runs): no point, a shaded column and words at its top
        if diverged[i]:
            _mark_study_diverged(ax, xi)
        labels.append(ax.annotate(diverged_words(row) if diverged[i] else (str(row.verdict) or "no runs"),
                                  (xi, 1.0), xycoords=("data", "axes fraction"), xytext=(0, -4),
                                  textcoords="offset points", ha="center", va="top", fontsize=8, color="black"))
    ax.set_ylim(bottom - 0.15 * span, top + 0.3 * span)
    ax.set_ylabel("change in validation loss: rung - baseline (nats; below 0: the piece helped)")
    ax.grid(alpha=0.3)
    if any(measured):  # the band is drawn only where a change was measured
        ax.legend(loc="upper left", fontsize=8.5)
    return labels


def _study_means_panel(ax, table: pd.DataFrame, x: list[float], rung: str, against: str) -> list:
    """Both sides' mean validation loss at each value, each with its 95% interval; a side that diverged has no
    mean, and its column says so (one label per value, naming the sides). Returns the labels it placed."""
    for side, name, tint in (("baseline", against, "#8a8a8a"), ("rung", rung, "#3b6ea8")):
        means, stds, seeds = table[f"{side}_mean"], table[f"{side}_std"], table[f"{side}_seeds"]
        ok = [pd.notna(m) and math.isfinite(m) and not d for m, d in zip(means, table[f"{side}_diverged"])]
        for k, run in enumerate(_segments(ok)):  # a line never bridges a point without a mean, nor unordered values
            ax.errorbar([x[i] for i in run], means.iloc[run], yerr=[mean_interval(stds.iloc[i], int(seeds.iloc[i]))
                                                                   for i in run],
                        color=tint, marker="o", capsize=4, linewidth=1.5, linestyle="-" if ordered(table) else "none",
                        label=f"{side}: {name}" if k == 0 else None)
    labels = []
    for xi, (_, row) in zip(x, table.iterrows()):
        if row.baseline_diverged or row.rung_diverged:
            _mark_study_diverged(ax, xi)
            labels.append(ax.annotate(diverged_words(row), (xi, 1.0), xycoords=("data", "axes fraction"),
                                      xytext=(0, -4), textcoords="offset points", ha="center", va="top", fontsize=8,
                                      color="black"))
    ax.set_ylabel("validation loss (mean over seeds, bar = 95% interval)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8.5)
    return labels


def _drawn_obstacles(fig, renderer, fixed: list) -> list:
    """The window boxes of the texts a figure draws besides the movable labels: `fixed` (e.g. its suptitle), the
    axes' titles and axis labels, the tick labels inside each axis's span, legend entries."""
    boxes = [t.get_window_extent(renderer) for t in fixed]
    for ax in fig.axes:
        (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
        texts = [ax.title, ax.xaxis.label, ax.yaxis.label]  # tick labels are drawn for ticks within the limits
        texts += [t for t in ax.get_xticklabels() if x0 <= t.get_position()[0] <= x1]
        texts += [t for t in ax.get_yticklabels() if y0 <= t.get_position()[1] <= y1]
        legend = ax.get_legend()
        texts += legend.get_texts() if legend is not None else []
        boxes += [t.get_window_extent(renderer) for t in texts if t.get_visible() and t.get_text().strip()]
    return boxes


def spread_labels(fig, labels: list, fixed: list = (), step: float = 2.0) -> None:
    """Move each label (an annotation placed with an offset in points) up or down, the way it points away from
    its anchor, until it overlaps no other text: no two labels of a chart are ever drawn over each other.
    `fixed`: figure-level texts (a suptitle) to keep clear of, besides the axes' own."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    placed = _drawn_obstacles(fig, renderer, list(fixed))
    for label in labels:
        direction = 1.0 if label.xyann[1] >= 0 else -1.0
        for _ in range(200):
            box = label.get_window_extent(renderer)
            hit = [b for b in placed if min(box.x1, b.x1) - max(box.x0, b.x0) > 0
                   and min(box.y1, b.y1) - max(box.y0, b.y0) > 0]
            if not hit:
                break
            gap = (max(b.y1 for b in hit) - box.y0 if direction > 0 else box.y1 - min(b.y0 for b in hit)) + step
            label.xyann = (label.xyann[0], label.xyann[1] + direction * gap * 72 / fig.dpi)
        placed.append(label.get_window_extent(renderer))


def study_figure(table: pd.DataFrame, title: str, *, setting: str, rung: str, against: str,
                 crossovers: list[tuple[str, str]]):
    """Left: the change from baseline to rung against the swept value (`setting`), with its 95% band, the zero
    line, verdict colours, diverged points marked and the `crossovers` shaded (pairs of labels,
    common.studies.crossovers). Right: both sides' mean validation loss. Returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, log = _study_x(table)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(15, 6.5), gridspec_kw={"width_ratios": [1.25, 1]})
    labels = _study_delta_panel(ax, table, x) + _study_means_panel(ax2, table, x, rung, against)
    position = dict(zip(table.label, x))
    for a, b in crossovers:
        ax.axvspan(position[a], position[b], color="#e07b00", alpha=0.12, linewidth=0)
        middle = math.sqrt(position[a] * position[b]) if log else (position[a] + position[b]) / 2
        labels.append(ax.annotate("crossover", (middle, 0.02), xycoords=("data", "axes fraction"), xytext=(0, 0.01),
                                  textcoords="offset points", ha="center", fontsize=9, color="#e07b00"))
    for axis in (ax, ax2):
        if log:
            axis.set_xscale("log")
        axis.set_xticks(x)
        axis.set_xticklabels(table.label, rotation=20 if len(x) > 4 else 0)
        axis.minorticks_off()
        axis.margins(x=0.1)
        axis.set_xlabel(setting)
    ax.set_title(f"{rung} against {against}: where it pays", fontsize=10.5)
    ax2.set_title("Both sides", fontsize=10.5)
    heading = fig.suptitle(title, fontsize=11.5)
    fig.tight_layout()
    spread_labels(fig, labels, [heading])
    return fig


def draw_study(table: pd.DataFrame, path: str | os.PathLike, title: str, *, setting: str, rung: str, against: str,
               crossovers: list[tuple[str, str]]) -> None:
    """study_figure, saved as a PNG at `path`."""
    save_figure(study_figure(table, title, setting=setting, rung=rung, against=against, crossovers=crossovers), path)
