"""The issue's goals, as ratios measured in one run: each verdict with its numbers and whether it is met."""
from __future__ import annotations

from typing import Any

from bench.plan import PINNED

# Goals from the issue, checked when their row is in the run (never in --quick).
# Ratios measured in one run on one machine (issue 12), so that they hold whatever the machine's speed:
STEP_GOAL_RATIO = 1.25  # scaled's step at least this many times faster than the nanoGPT-shaped model's
AUTO_GOAL_SLOWER = 0.10  # precision=auto at most 10% slower than the faster of fp32 and bf16
TTQ_GOAL_RATIO = 1.5  # val <= 1.88 at least this many times sooner than nanoGPT's recipe takes (2,000 steps)
GPU_RUN_GOAL_S = 60.0  # scaled at the lecture's setting, 5,000 steps, one H100


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def slower(ms: float, best_ms: float) -> str:
    """How much slower ms is than best_ms, in words: "4.1% slower", or "2.0% faster (timing noise ...)"."""
    pct = 100 * (ms / best_ms - 1)
    return f"{pct:.1f}% slower" if pct > 0 else f"{-pct:.1f}% faster (timing noise: the same computation)"


def goal_verdicts(device: str, by_key: dict[tuple[str, str], Any], fastest_nano: dict[str, dict[str, Any]],
                  ttq: dict[str, Any] | None, full_run: dict[str, Any] | None) -> list[str]:
    """The issue's goals that this run measured, each with its numbers and whether it is met."""
    goals = []
    recipe_scaled, recipe_nano = by_key.get(("nanogpt-recipe", "scaled")), fastest_nano.get("nanogpt-recipe")
    if recipe_scaled and recipe_nano:
        ratio = recipe_nano["ms"] / recipe_scaled["ms"]
        goals.append(f"scaled's step at the nanoGPT recipe ≥ {STEP_GOAL_RATIO:g}× faster than the nanoGPT-shaped "
                     f"model's: {ratio:.2f}× ({_met(ratio >= STEP_GOAL_RATIO)})")
    pinned = [by_key.get(("nanogpt-recipe", f"scaled@{p}")) for p in PINNED]
    if recipe_scaled and all(pinned):
        best = min(r["ms"] for r in pinned)
        goals.append(f"precision=auto ≤ {AUTO_GOAL_SLOWER:.0%} slower than the faster precision: "
                     f"{slower(recipe_scaled['ms'], best)} "
                     f"({_met(recipe_scaled['ms'] <= best * (1 + AUTO_GOAL_SLOWER))})")
    if ttq and "error" not in ttq and ttq.get("setting") == "nanogpt-recipe" and recipe_nano and recipe_scaled:
        goals.append(ttq_goal_verdict(ttq, recipe_scaled, recipe_nano))
    lecture_scaled = by_key.get(("lecture", "scaled"))
    if device.startswith("cuda") and lecture_scaled:
        projected = lecture_scaled["max_iters"] * lecture_scaled["ms"] / 1000
        goals.append(f"scaled at the lecture's setting, 5,000 steps ≤ {GPU_RUN_GOAL_S:g} s: {projected:.1f} s of "
                     f"steps ({'met' if projected <= GPU_RUN_GOAL_S else 'not met'}, evaluations excluded)")
    if device.startswith("cuda") and full_run and "error" not in full_run and full_run.get("setting") == "lecture":
        goals.append(f"the same with evaluations: {full_run['wall']:.1f} s "
                     f"({'met' if full_run['wall'] <= GPU_RUN_GOAL_S else 'not met'})")
    return goals


def ttq_goal_verdict(ttq: dict[str, Any], recipe_scaled: dict[str, Any], recipe_nano: dict[str, Any]) -> str:
    """Time to quality against nanoGPT's recipe (its max_iters steps), both in steps × the median step time."""
    # both sides on one footing: steps x the median step time measured above, evaluations excluded
    # (the time-to-quality run's own wall time, its evaluations included, is printed above)
    theirs = recipe_nano["max_iters"] * recipe_nano["ms"] / 1000
    if not ttq["reached"]:
        return f"val ≤ {ttq['target']} ≥ {TTQ_GOAL_RATIO:g}× sooner than nanoGPT's recipe: not reached (not met)"
    ours = ttq["step"] * recipe_scaled["ms"] / 1000
    ratio = theirs / ours
    return (f"val ≤ {ttq['target']} ≥ {TTQ_GOAL_RATIO:g}× sooner than nanoGPT's recipe, in steps × "
            f"ms/step: {ttq['step']:,} × {recipe_scaled['ms']:.2f} ms = {ours:.1f} s against "
            f"{recipe_nano['max_iters']:,} × {recipe_nano['ms']:.2f} ms = {theirs:.1f} s, {ratio:.2f}× "
            f"({_met(ratio >= TTQ_GOAL_RATIO and ttq['target'] <= 1.88)})")
