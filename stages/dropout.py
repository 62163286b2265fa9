"""Stage 8 — dropout: randomly zero activations while training, to fight overfitting.

What it adds: dropout (Srivastava et al. 2014) with probability `dropout` in three places, as in
the lecture: on the attention weights (a token randomly ignores some of its past), after the
attention projection and after the feed-forward layer, before each rejoins the residual stream.
Dropout is active only in training mode; `model.eval()` turns it off. On the CPU the random mask is
drawn as uniform numbers instead of with PyTorch's own dropout kernel, which is slower there
(`Dropout` below): the same operation (each value zeroed with probability p, the rest scaled by
1 / (1 - p), that scale rounded to the activations' precision as PyTorch's kernel rounds it: 1.109
in bf16 at p = 0.1), from a different stream of random numbers.

Why it should help: it stops the network relying on any single path, a regulariser that pays
when the model is large enough to memorise the training text (train loss well below val loss).
When the model is too small to overfit within its training budget, dropout only slows learning
and the validation loss gets *worse*; the loss ladder reports that honestly.
The lecture added dropout in the same step as the scale-up, so it reported no loss for it alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from stages.layernorm import Block as LayerNormBlock
from stages.layernorm import Model as LayerNormModel
from stages.residual import Config as ResidualConfig
from stages.residual import FeedForward as ResidualFeedForward
from stages.residual import MultiHeadAttention as ResidualMultiHeadAttention

ADDS = "dropout on attention weights and before each residual add"
LECTURE_VAL_LOSS = None


class Dropout(nn.Dropout):
    """nn.Dropout: while training, zero each value with probability p and scale the rest by 1 / (1 - p).

    On the CPU the mask is drawn as uniform numbers u and kept where u >= p: PyTorch's dropout kernel
    draws it with bernoulli_, which took a fifth of the `scaled` step of the cpu profile (p = 0.1) on
    one CPU thread (`python bench/levers.py profile`), and the whole step runs about 1.1x faster this
    way (`python bench/levers.py dropout`). On CUDA and MPS it keeps PyTorch's kernel (not measured there).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        keep = torch.rand(x.shape, device=x.device).ge_(self.p).mul_(1 / (1 - self.p))  # 0 or 1/(1-p), same shape as x
        return x * keep.to(x.dtype)


@dataclass(frozen=True)
class Config(ResidualConfig):
    dropout: float = 0.2  # probability of zeroing an activation while training

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class MultiHeadAttention(ResidualMultiHeadAttention):
    def __init__(self, config: Config):
        super().__init__(config)
        self.attn_dropout = Dropout(config.dropout)
        self.resid_dropout = Dropout(config.dropout)

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return self.attn_dropout(super().attention_weights(q, k))  # (..., T, T)

    def attention_dropout(self) -> float:  # the fused kernel drops the same share of weights itself
        return self.attn_dropout.p if self.training else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resid_dropout(super().forward(x))  # (B, T, C)


class FeedForward(ResidualFeedForward):
    def build_layers(self, config: Config) -> list[nn.Module]:
        return super().build_layers(config) + [Dropout(config.dropout)]


class Block(LayerNormBlock):
    def build_communication(self, config: Config) -> nn.Module:
        return MultiHeadAttention(config)

    def build_computation(self, config: Config) -> nn.Module:
        return FeedForward(config)


class Model(LayerNormModel):
    def build_block(self, config: Config) -> nn.Module:
        return Block(config)
