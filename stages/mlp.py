"""Stage 5 — MLP: a per-token feed-forward layer after attention.

What it adds: after the heads have gathered information from the past, each token processes
it on its own through a small feed-forward layer (linear, then ReLU), as in the position-wise
feed-forward network of Vaswani et al. (2017). In the lecture's words, the tokens "looked at each
other but didn't have time to think about what they found".

Why it should help: attention only mixes vectors with weights that sum to one; it computes no
new features. The feed-forward layer adds a non-linear computation per token. As in the lecture,
the logits are read off its output, `lm_head(ffwd(sa(x)))`; the residual stream comes at the
next stage.
The lecture reported: val loss 2.24 (from 2.28).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from stages.multi_head import Block as MultiHeadBlock
from stages.multi_head import Config
from stages.multi_head import Model as MultiHeadModel

ADDS = "per-token feed-forward layer (linear + ReLU) after attention"
LECTURE_VAL_LOSS = 2.24


class FeedForward(nn.Module):
    """A per-token linear layer followed by a non-linearity."""

    def __init__(self, config: Config):
        super().__init__()
        self.net = nn.Sequential(*self.build_layers(config))

    def build_layers(self, config: Config) -> list[nn.Module]:
        return [nn.Linear(config.n_embd, config.n_embd), nn.ReLU()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, T, C)


class Block(MultiHeadBlock):
    """Communication (attention), then computation (feed-forward)."""

    def __init__(self, config: Config):
        super().__init__(config)
        self.ffwd = self.build_computation(config)

    def build_computation(self, config: Config) -> nn.Module:
        return FeedForward(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffwd(self.sa(x))  # (B, T, C): communicate, then compute


class Model(MultiHeadModel):
    def build_block(self, config: Config) -> nn.Module:
        return Block(config)
