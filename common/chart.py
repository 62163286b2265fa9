"""The loss-ladder chart, drawn from the saved results (the table and the per-run curves)."""
from __future__ import annotations

import math
import os
from typing import Mapping

import pandas as pd

COLOURS = {"helped": "#2a9d4b", "within noise": "#8a8a8a", "hurt": "#d1495b", "": "#3b6ea8"}


def draw_ladder(table: pd.DataFrame, curves: Mapping[str, pd.DataFrame], path: str | os.PathLike,
                title: str, vocab_size: int = 65) -> None:
    """Left: mean validation loss per stage with the seeds' spread, each step labelled with its change
    and verdict, the lecture's values and the uniform guess for reference. Right: learning curves.

    curves[stage] has columns step, val_loss (mean over seeds), val_min, val_max.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.io import atomic_path

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(16, 7), gridspec_kw={"width_ratios": [1.35, 1]})
    x = list(range(len(table)))
    uniform = math.log(vocab_size)

    # the ladder: a step line through the means, error bars for the seeds' spread
    ax.step(x, table.val_loss_mean, where="mid", color="#3b6ea8", alpha=0.35, linewidth=2, zorder=1)
    ax.errorbar(x, table.val_loss_mean, yerr=table.val_loss_std.fillna(0), fmt="none", ecolor="black",
                capsize=5, linewidth=1.2, zorder=3)
    colours = [COLOURS.get(v, COLOURS[""]) for v in table.verdict]
    ax.scatter(x, table.val_loss_mean, s=90, c=colours, edgecolors="black", zorder=4, label="val loss (mean ± std over seeds)")
    ax.scatter(x, table.train_loss_mean, s=40, marker="_", color="#444444", linewidths=2, zorder=4,
               label="train loss (mean); gap = val - train, large when overfitting")
    lecture = table.lecture_val_loss
    if lecture.notna().any():
        ax.scatter([i for i, v in zip(x, lecture) if pd.notna(v)], lecture.dropna(), s=90, marker="D",
                   facecolors="none", edgecolors="#e07b00", linewidths=1.8, zorder=5, label="lecture's reported val loss")
    ax.axhline(uniform, color="#999999", linestyle="--", linewidth=1)
    ax.text(-0.5, uniform, f"uniform guess ln({vocab_size}) = {uniform:.2f}", ha="left", va="bottom",
            fontsize=9, color="#666666")
    low = min(table.val_loss_mean.min(), table.train_loss_mean.min(), lecture.min() if lecture.notna().any() else 9)
    span = uniform - low + 0.15
    for i, row in table.iterrows():
        label = f"{row.val_loss_mean:.3f}"
        if row.verdict:
            label = f"{row.delta:+.3f}\n{row.verdict}\n" + label
        top = max(row.val_loss_mean + (0 if pd.isna(row.val_loss_std) else row.val_loss_std),
                  row.lecture_val_loss if pd.notna(row.lecture_val_loss) else -9)
        ax.annotate(label, (i, top), xytext=(0, 10), textcoords="offset points", ha="center",
                    va="bottom", fontsize=8.5, color=COLOURS.get(row.verdict, "black"),
                    fontweight="bold" if row.verdict == "hurt" else "normal",
                    bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.8))
        ax.annotate(f"gap {row.gap:+.2f}", (i, row.train_loss_mean), xytext=(0, -6), textcoords="offset points",
                    ha="center", va="top", fontsize=7.5, color="#555555")
    ax.set_xticks(x)
    ax.set_xticklabels(table.stage, rotation=30, ha="right")
    ax.set_ylim(low - 0.08 * span, uniform + 0.12 * span)
    ax.set_xlim(-0.6, len(x) - 0.4)
    ax.set_ylabel("validation loss (nats per character, lower is better)")
    ax.set_title("The loss ladder: each stage adds one piece")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.9), fontsize=8.5, framealpha=0.9)

    # the learning curves
    cmap = plt.get_cmap("viridis")
    for k, stage in enumerate(table.stage):
        curve = curves.get(stage)
        if curve is None or curve.empty:
            continue
        colour = cmap(k / max(1, len(table) - 1))
        ax2.plot(curve.step, curve.val_loss, color=colour, linewidth=1.6, label=stage)
        ax2.fill_between(curve.step, curve.val_min, curve.val_max, color=colour, alpha=0.15, linewidth=0)
    ax2.axhline(uniform, color="#999999", linestyle="--", linewidth=1)
    ax2.set_xlabel("training step")
    ax2.set_ylabel("validation loss (nats per character)")
    ax2.set_title("Learning curves (mean over seeds, band = min..max)")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8.5, ncol=2)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
