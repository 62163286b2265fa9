"""Stage 7 — layernorm: normalise each token's vector before each sub-layer and before the head.

What it adds: LayerNorm (Ba et al. 2016) in the "pre-norm" position used by GPT-2 and the
lecture: `x = x + sa(ln1(x))`, `x = x + ffwd(ln2(x))`, and a final LayerNorm before the linear
head. Each token's vector is rescaled to zero mean and unit variance (then a learned gain and
bias), so every sub-layer sees inputs of a steady scale however deep the stack grows.

Why it should help: steadier activations make optimisation of the deep stack better behaved.
The lecture reported: val loss 2.06 (from about 2.08).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from stages.residual import Block as ResidualBlock
from stages.residual import Config
from stages.residual import Model as ResidualModel

ADDS = "pre-norm LayerNorm in each block and before the head"
LECTURE_VAL_LOSS = 2.06


class Block(ResidualBlock):
    def __init__(self, config: Config):
        super().__init__(config)
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.join(x, self.sa(self.ln1(x)))  # (B, T, C)
        x = self.join(x, self.ffwd(self.ln2(x)))  # (B, T, C)
        return x


class Model(ResidualModel):
    def build_block(self, config: Config) -> nn.Module:
        return Block(config)

    def build_final_norm(self, config: Config) -> nn.Module:
        return nn.LayerNorm(config.n_embd)
