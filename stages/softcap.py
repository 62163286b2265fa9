"""Modern piece — softcap: the logits pass through cap * tanh(logits / cap).

What it adds: logit soft-capping (Gemma 2, 2024; modded-nanogpt), with cap `logit_cap` (15 by
default, modded-nanogpt's). Small logits pass almost unchanged; large ones are squashed smoothly
towards +-cap.

Why it should help: the model cannot grow a logit without bound to become overconfident, which
keeps the output layer's gradients alive and training steadier.

It is measured as a step from the top rung of the modern ladder (the piece it would join).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from stages.qk_norm import Config as QKNormConfig
from stages.qk_norm import Model as QKNormModel

ADDS = "logit soft-capping, cap * tanh(logits / cap)"
LECTURE_VAL_LOSS = None


@dataclass(frozen=True)
class Config(QKNormConfig):
    logit_cap: float = 15.0  # the logits' soft bound

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.logit_cap < math.inf:
            raise ValueError(f"logit_cap must be a positive finite number, got {self.logit_cap}")


class SoftCap(nn.Module):
    def __init__(self, cap: float):
        super().__init__()
        self.cap = cap

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.cap * torch.tanh(logits / self.cap)  # (B, T, vocab_size), within (-cap, cap)


class Model(QKNormModel):
    def build_head(self, config: Config) -> nn.Module:
        return nn.Sequential(super().build_head(config), SoftCap(config.logit_cap))
