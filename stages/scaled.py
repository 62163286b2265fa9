"""Stage 9 — scaled: the same architecture, grown to the lecture's ~10.8M-parameter GPT.

What it adds: nothing to the code, only to the configuration: n_embd 384, 6 heads of 64,
6 layers, a context of 256 characters and dropout 0.2 (the lecture's final settings, trained with
lr 3e-4, batch 64, 5,000 steps). Which sizes each profile uses is data in `common/profiles.py`, and
so is what else a profile changes at this step with the size (the `cpu` profile: GPT-2's
initialisation, its own learning rate, batch and steps; it keeps 4 heads), each with the reason.

Why it should help: more width, depth and context, with dropout keeping the larger model from
memorising the training text.
The lecture reported: val loss 1.48 (the final GPT, about 15 minutes on an A100).
"""
from __future__ import annotations

from stages.dropout import Config, Model  # noqa: F401  (the scaled stage is a configuration)

ADDS = "the larger configuration (width, depth, heads, context)"
LECTURE_VAL_LOSS = 1.48
