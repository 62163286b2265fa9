"""The report: the measurements turned into Markdown (the machine, the matmul ceiling, the table, the ratios
measured side by side, the training runs, and the goals' verdicts); what `make bench` prints."""
from __future__ import annotations

import math
from typing import Any

from bench.goals import goal_verdicts, slower
from bench.plan import NANOGPT, PINNED, REFERENCE, split_row


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, fmt)



TABLE_COLUMNS = ["setting", "stage", "precision", "params", "B×T", "ms/step", "tokens/s", "GFLOP/s", "% of ceiling",
                 "peak MB", "Δ MB"]


def table_rows(rows: list[dict[str, Any]], ceiling_gflops: float | None) -> list[list[str]]:
    """The cells of the table, one list per row (a failed row says why)."""
    out = []
    for row in rows:
        r = row.get("result")
        if r is None:
            out.append([row["setting"], split_row(row["stage"])[0], f"failed: {row.get('error', '?')}"]
                       + [""] * (len(TABLE_COLUMNS) - 3))
            continue
        gflops = r["flops_per_step"] / (r["ms"] / 1000) / 1e9 if r["ms"] > 0 else None
        share = 100 * gflops / ceiling_gflops if gflops is not None and ceiling_gflops else None
        precision = r.get("precision") or "?"
        out.append([
            row["setting"], split_row(row["stage"])[0], precision + (" (set)" if r.get("pinned") else " (auto)"),
            f"{r['params']:,}", f"{r['batch_size']}×{r['block_size']}",
            _num(r["ms"], ".2f"), _num(r["tokens_per_step"] / (r["ms"] / 1000), ",.0f"),
            _num(gflops, ".2f"), _num(share, ".1f"), _num(r["peak_mb"], ".0f"), _num(r["delta_mb"], ".0f"),
        ])
    return out


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table; the first three columns left-aligned, the rest right."""
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i >= 3 else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def build_report(machine: dict[str, Any], ceiling: dict[str, Any] | None, rows: list[dict[str, Any]],
                 ttq: dict[str, Any] | None, full_run: dict[str, Any] | None = None, ceiling_dtype: str = "fp32",
                 quick: bool = False) -> str:
    """The whole report as Markdown: machine, ceiling, the table, ratios, time to quality, goals."""
    device = machine["device"]
    lines, ceiling_gflops = report_head(machine, ceiling, ceiling_dtype, quick)
    lines.append("")
    lines.append(markdown_table(TABLE_COLUMNS, table_rows(rows, ceiling_gflops)))
    lines.append("")
    lines.append(table_note(rows, device))
    lines.append("")

    # the references against the scaled stage, wherever they ran at the same setting
    by_key = {(r["setting"], r["stage"]): r.get("result") for r in rows}
    fastest_nano = fastest_nanogpt_rows(by_key)
    for setting in dict.fromkeys(r["setting"] for r in rows):
        lines.extend(comparison_lines(setting, by_key))
    lines.extend(training_run_lines(ttq, full_run))

    if not quick:  # the goals, where this run measured them
        goals = goal_verdicts(device, by_key, fastest_nano, ttq, full_run)
        if goals:
            lines.append("")
            lines.append("Goals: " + "; ".join(goals) + ".")
    return "\n".join(lines) + "\n"


def report_head(machine: dict[str, Any], ceiling: dict[str, Any] | None, ceiling_dtype: str,
                quick: bool) -> tuple[list[str], float | None]:
    """The lines of the title, the machine and the matmul ceiling; and the ceiling's GFLOP/s the % column is
    against (None where it was not measured)."""
    lines = []
    title = "GPT Ladder benchmark" + (" (--quick: tiny settings, numbers mean nothing)" if quick else "")
    lines.append(f"## {title}\n")
    device = machine["device"]
    where = f"{machine['device_name']} ({device})" if machine.get("device_name") else device
    yes = {True: "yes", False: "no"}
    lines.append(f"- **machine**: {machine['date']} · {machine['cpu']} ({machine['cores']} cores; bf16 AMX: "
                 f"{yes[bool(machine['amx_bf16'])]}, AVX512-BF16: {yes[bool(machine.get('avx512_bf16'))]}) · "
                 f"device {where} · {machine['threads']} threads · "
                 f"torch {machine.get('torch', '?')} · Python {machine['python']}")
    ceiling_gflops = None
    if ceiling is not None and ceiling.get("gflops"):
        parts = [f"{k} {v:,.1f} GFLOP/s" for k, v in ceiling["gflops"].items()]
        lines.append(f"- **matmul ceiling** ({ceiling['n']}×{ceiling['n']}, best of {ceiling['repeats']}): "
                     + ", ".join(parts) + f"; the % column is against {ceiling_dtype}")
        ceiling_gflops = ceiling["gflops"].get(ceiling_dtype)
    elif ceiling is not None:
        lines.append(f"- **matmul ceiling**: failed: {ceiling.get('error')}")
    return lines, ceiling_gflops


def table_note(rows: list[dict[str, Any]], device: str) -> str:
    """The paragraph under the table: how ms/step, GFLOP/s and peak MB were measured in this run."""
    timing = "median of each timed step" if device == "cpu" else "mean over the timed steps"
    rounds = max((len(r["result"].get("rounds_ms", [])) for r in rows if r.get("result")), default=1)
    if rounds > 1:
        timing += (f" (the rows compared side by side: {rounds} alternating rounds, each row's median round "
                   f"shown)")
    return (f"ms/step: {timing} of a full training step (batch, forward, backward, AdamW). GFLOP/s: "
            f"6·N(non-embedding) + 12·T·(attention width) FLOPs per token. peak MB: "
            f"{'peak resident memory of the row’s process (Δ: above its level before the model was built)' if device == 'cpu' else 'peak CUDA memory allocated (Δ: above the level before the model was built)'}.")


def _nanogpt_rows(setting: str, by_key: dict[tuple[str, str], Any]) -> list[dict[str, Any]]:
    """The nanoGPT-shaped model's results at `setting`, one per pinned precision that ran."""
    return [n for n in (by_key.get((setting, f"{NANOGPT}@{p}")) for p in PINNED) if n]


def fastest_nanogpt_rows(by_key: dict[tuple[str, str], Any]) -> dict[str, dict[str, Any]]:
    """Setting -> the nanoGPT-shaped row at its faster precision, for every setting where it ran."""
    fastest = {}
    for setting in dict.fromkeys(setting for setting, _ in by_key):
        nanos = _nanogpt_rows(setting, by_key)
        if nanos:
            fastest[setting] = min(nanos, key=lambda r: r["ms"])
    return fastest


def comparison_lines(setting: str, by_key: dict[tuple[str, str], Any]) -> list[str]:
    """At one setting: each reference's step against scaled's, precision=auto against the pinned
    precisions, and the training steps' time of a whole scaled run."""
    lines = []
    ref, scaled = by_key.get((setting, REFERENCE)), by_key.get((setting, "scaled"))
    nanos = _nanogpt_rows(setting, by_key)
    if ref and scaled:
        lines.append(f"- **reference / scaled** at {setting}: {ref['ms']:.2f} ms / {scaled['ms']:.2f} ms = "
                     f"**{ref['ms'] / scaled['ms']:.2f}×** (the lecture's gpt.py is that many times slower)")
    if nanos and scaled:
        nano = min(nanos, key=lambda r: r["ms"])
        each = ", ".join(f"{n['precision']} {n['ms']:.2f} ms" for n in nanos)
        lines.append(f"- **nanoGPT-shaped / scaled** at {setting}: {nano['ms']:.2f} ms ({nano['precision']}, the "
                     f"faster of {each}) / {scaled['ms']:.2f} ms ({scaled['precision']}) = "
                     f"**{nano['ms'] / scaled['ms']:.2f}×** (above 1: the project's step is faster)")
        if len(scaled.get("rounds_ms", [])) > 1:
            per_round = ", ".join(f"{n / o:.2f}×" for n, o in zip(nano["rounds_ms"], scaled["rounds_ms"]))
            lines.append(f"  - round by round: {per_round}")
    if scaled and scaled.get("precision") and not scaled.get("pinned"):
        lines.append(auto_precision_line(setting, scaled, {p: by_key.get((setting, f"scaled@{p}")) for p in PINNED}))
    if scaled:
        lines.append(f"- scaled at {setting}: {scaled['max_iters']:,} steps × {scaled['ms']:.2f} ms = "
                     f"{scaled['max_iters'] * scaled['ms'] / 1000:,.1f} s of training steps (evaluations excluded)")
    return lines


def auto_precision_line(setting: str, scaled: dict[str, Any], pinned: dict[str, dict[str, Any] | None]) -> str:
    """What precision=auto chose for scaled at `setting`, and how it compares with scaled pinned to each precision."""
    line = (f"- **precision=auto** at {setting}: chose **{scaled['precision']}** by measurement on this "
            f"machine (common/precision.py): {scaled['ms']:.2f} ms")
    if all(pinned.values()):
        best = min(pinned.values(), key=lambda r: r["ms"])
        line += (f"; pinned: fp32 {pinned['fp32']['ms']:.2f} ms, bf16 {pinned['bf16']['ms']:.2f} ms; auto is "
                 f"{slower(scaled['ms'], best['ms'])} than the faster ({best['precision']})")
    return line


def training_run_lines(ttq: dict[str, Any] | None, full_run: dict[str, Any] | None) -> list[str]:
    """The time-to-quality run and the full run, each where it ran (or why it failed)."""
    lines = []
    for label, run in (("time to quality", ttq), ("full run", full_run)):
        if run is None:
            continue
        if "error" in run:
            lines.append(f"- **{label}**: failed: {run['error']}")
            continue
        how = (f"{run['setting']}, eval every {run['eval_interval']} steps on {run['eval_iters']} batches per split, "
               f"evaluations included")
        if label == "full run":
            lines.append(f"- **full run** ({how}): {run['steps_run']:,} steps in **{run['wall']:.1f} s**, "
                         f"final val {run['final_val']:.4f}, best {run['best_val']:.4f} at step {run['best_step']:,}")
        elif run["reached"]:
            after = (f"; trained on to step {run['steps_run']:,} ({run['wall']:.1f} s): final val {run['final_val']:.4f}"
                     if run["steps_run"] > run["step"] + 1 else "")
            lines.append(f"- **time to quality** (val ≤ {run['target']}, {how}): **{run['seconds']:.1f} s**, "
                         f"val {run['val_loss']:.4f} at step {run['step']:,}{after}")
        else:
            lines.append(f"- **time to quality** (val ≤ {run['target']}, {how}): **not reached** in "
                         f"{run['steps_run']:,} steps ({run['wall']:.1f} s); best val {run['best_val']:.4f} at "
                         f"step {run['best_step']:,}")
    return lines
