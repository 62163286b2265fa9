"""What the benchmark measures: the names of its rows (a stage, the two references, a pinned precision)
and the settings it benchmarks on each device (profiles and the nanoGPT recipe), as data."""
from __future__ import annotations

from typing import Any

REFERENCE = "reference"  # the name of the lecture's plain gpt.py in the table and in --stages
NANOGPT = "nanogpt-shaped"  # a nanoGPT-shaped model of the same sizes (bench/nanogpt_shaped.py)
REFERENCES = (REFERENCE, NANOGPT)
PINNED = ("fp32", "bf16")  # a row named "stage@fp32" runs at that precision instead of precision=auto

# The nanoGPT CPU recipe (README of karpathy/nanoGPT: train_shakespeare_char on a MacBook):
# 4 layers, 4 heads, n_embd 128, block 64, batch 12, lr 1e-3 with 100 warm-up steps and cosine
# decay to 1e-4 over 2,000 steps, dropout 0. Its published result: val 1.88 after 2,000 steps.
# nanoGPT's command evaluated on 20 batches per split; 200 here give a steadier estimate
# (--ttq-set eval_iters=20 for theirs). Its other defaults (AdamW beta2 0.99, weight decay 0.1,
# gradient clipping at 1.0) are not copied: the project's TrainConfig defaults are used.
NANOGPT_RECIPE = dict(block_size=64, n_embd=128, n_head=4, n_layer=4, dropout=0.0, batch_size=12,
                      learning_rate=1e-3, warmup_iters=100, lr_decay=True, min_lr_ratio=0.1,
                      max_iters=2000, eval_interval=250, eval_iters=200, init="gpt2")  # nanoGPT's N(0, 0.02)

# Tiny stand-ins for --quick: seconds, not minutes, and a target any model passes quickly.
QUICK_RECIPE = dict(block_size=16, n_embd=32, n_head=4, n_layer=2, dropout=0.0, batch_size=4,
                    learning_rate=3e-3, warmup_iters=5, lr_decay=True, min_lr_ratio=0.1,
                    max_iters=60, eval_interval=20, eval_iters=4)
QUICK_TARGET = 3.5


def settings_plan(device_type: str, quick: bool) -> list[dict[str, Any]]:
    """The settings to benchmark: a name, the stages in it, and each stage's hyperparameters.

    Each entry: {"name", "stages": {stage: settings dict}}. The reference model is listed as a
    stage named REFERENCE and uses the `scaled` stage's settings.
    """
    from common.profiles import LECTURE_GPT, get_profile, settings_for
    from stages import STAGE_NAMES

    def profile_setting(profile_name: str, name: str | None = None) -> dict[str, Any]:
        profile = get_profile(profile_name)
        return {"name": name or profile_name,
                "stages": {stage: settings_for(profile, stage) for stage in STAGE_NAMES}}

    def scaled_and_reference(name: str, settings: dict[str, Any]) -> dict[str, Any]:
        # scaled at precision=auto (what the runner trains with) and pinned to each precision (how close auto
        # comes to the faster one); the lecture-form reference at auto; the nanoGPT-shaped model at each
        # precision, so that scaled is compared with whichever of them is faster for it here
        rows = {"scaled": dict(settings), REFERENCE: dict(settings)}
        for precision in PINNED:
            rows[f"scaled@{precision}"] = dict(settings, precision=precision)
        for precision in PINNED:
            rows[f"{NANOGPT}@{precision}"] = dict(settings, precision=precision)
        return {"name": name, "stages": rows}

    if quick:
        return [profile_setting("smoke"), scaled_and_reference("recipe-tiny", QUICK_RECIPE)]
    if device_type == "cuda":
        return [profile_setting("gpu"), scaled_and_reference("lecture", LECTURE_GPT),
                scaled_and_reference("nanogpt-recipe", NANOGPT_RECIPE)]
    return [profile_setting("cpu"), scaled_and_reference("nanogpt-recipe", NANOGPT_RECIPE)]


def split_row(name: str) -> tuple[str, str | None]:
    """("scaled", "fp32") from "scaled@fp32"; (name, None) for a row at the setting's own precision."""
    stage, _, precision = name.partition("@")
    return stage, precision or None
