"""Modern piece — swiglu: the feed-forward layer becomes a gated one, SwiGLU, at the same size.

What it adds: SwiGLU (Shazeer 2020, "GLU Variants Improve Transformer"; PaLM 2022, Llama 2023).
The feed-forward layer computes two projections of the token, passes one through SiLU
(x * sigmoid(x)) and multiplies it element by element with the other, the *gate*, before
projecting back: `w2(silu(w1(x)) * w3(x))`. Three matrices instead of two, so the inner width
is 2/3 of 4 * n_embd (8/3 * n_embd, rounded), which keeps the parameter count within 1% of the
rung before, as the paper and Llama do.

Why it should help: the gate lets each inner unit be switched on by one feature of the token and
carry another, a product no single activation computes; at matched size it trained to a lower
loss in the paper.

It is measured as a step from the top rung of the modern ladder (the piece it would join).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from stages.qk_norm import Block as QKNormBlock
from stages.qk_norm import Config
from stages.qk_norm import Model as QKNormModel

ADDS = "a gated feed-forward layer (SwiGLU) at the same parameter count"
LECTURE_VAL_LOSS = None


def swiglu_width(n_embd: int) -> int:
    """The inner width whose three matrices hold what the 4x feed-forward layer's two do: 8/3 * n_embd."""
    return round(8 * n_embd / 3)


class FeedForward(nn.Module):
    """w2(silu(w1(x)) * w3(x)): a SiLU branch, gated by a linear one, projected back."""

    def __init__(self, config: Config):
        super().__init__()
        hidden = swiglu_width(config.n_embd)
        self.w1 = nn.Linear(config.n_embd, hidden)  # the branch through SiLU
        self.w3 = nn.Linear(config.n_embd, hidden)  # the gate
        self.w2 = nn.Linear(hidden, config.n_embd)  # back into the residual stream

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))  # (B, T, C)


class Block(QKNormBlock):
    def build_computation(self, config: Config) -> nn.Module:
        return FeedForward(config)


class Model(QKNormModel):
    def build_block(self, config: Config) -> nn.Module:
        return Block(config)
