"""Stage 6 — residual: blocks stacked n_layer deep, each sub-layer on a residual path.

What it adds: depth, made trainable. The block (attention, then feed-forward) is repeated
n_layer times, and each sub-layer now *adds* its output to a residual stream, `x = x + f(x)`,
instead of replacing it (He et al. 2015, "Deep Residual Learning"). Gradients flow straight down
the stream through the additions, so a deep stack trains as easily as a shallow one. With it come
the two pieces the lecture added at the same step: a linear projection after the attention heads
and after the feed-forward layer, back into the residual stream, and a feed-forward inner width
of 4 * n_embd, as in Vaswani et al. (2017).

Why it should help: more layers compute more, and the residual paths keep them trainable.
The lecture reported: val loss about 2.08 (from 2.24).

`residual = False` in the config (`--set residual=false`) builds the same stack with each
sub-layer's output replacing its input, `x = f(x)`: the ablation that shows what the residual
paths themselves are worth (docs/lecture.md and docs/studies.md have the measurements and their commands).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from stages.mlp import Block as MLPBlock
from stages.mlp import FeedForward as MLPFeedForward
from stages.mlp import Model as MLPModel
from stages.multi_head import Config as MultiHeadConfig
from stages.multi_head import MultiHeadAttention as PlainMultiHeadAttention

ADDS = "n_layer blocks on residual paths, projections, 4x feed-forward"
LECTURE_VAL_LOSS = 2.08


@dataclass(frozen=True)
class Config(MultiHeadConfig):
    n_layer: int = 3  # blocks stacked on the residual stream
    residual: bool = True  # False: the same stack without the residual paths (an ablation)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_layer <= 0:
            raise ValueError(f"n_layer must be a positive integer, got {self.n_layer}")


class MultiHeadAttention(PlainMultiHeadAttention):
    """The heads, concatenated, then projected back into the residual stream."""

    def __init__(self, config: Config):
        super().__init__(config)
        self.proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(super().forward(x))  # (B, T, C)


class FeedForward(MLPFeedForward):
    """Expand to 4 * n_embd, ReLU, project back into the residual stream."""

    def build_layers(self, config: Config) -> list[nn.Module]:
        return [nn.Linear(config.n_embd, 4 * config.n_embd), nn.ReLU(), nn.Linear(4 * config.n_embd, config.n_embd)]


class Block(MLPBlock):
    def __init__(self, config: Config):
        super().__init__(config)
        self.residual = config.residual

    def build_communication(self, config: Config) -> nn.Module:
        return MultiHeadAttention(config)

    def build_computation(self, config: Config) -> nn.Module:
        return FeedForward(config)

    def join(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The residual path: a sub-layer's output is added to the stream (replaces it in the ablation)."""
        return x + out if self.residual else out  # (B, T, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.join(x, self.sa(x))  # (B, T, C): communicate
        x = self.join(x, self.ffwd(x))  # (B, T, C): compute
        return x


class Model(MLPModel):
    def build_blocks(self, config: Config) -> list[nn.Module]:
        return [self.build_block(config) for _ in range(config.n_layer)]

    def build_block(self, config: Config) -> nn.Module:
        return Block(config)
