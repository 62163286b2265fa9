"""Modern rung 1 — gelu: the feed-forward layer's ReLU becomes a GELU.

What it adds: the Gaussian Error Linear Unit (Hendrycks and Gimpel 2016), x * Phi(x), in the
feed-forward layer in place of ReLU, as GPT-2 (2019) has it. GPT-2 computed a tanh approximation of
Phi, cheaper on the accelerators of its day; this is PyTorch's exact form, which measured faster
on the CPU (`python bench/levers.py modern`). GPTs since (GPT-3, and the gated variants of PaLM and
Llama) have dropped the plain ReLU.

Why it should help: ReLU's output and gradient are exactly zero for every negative input, so a
unit pushed negative for all tokens stops learning; GELU is smooth, passes a little of the
negative side and a gradient everywhere.

The modern ladder starts at the `layernorm` rung: the lecture's GPT without dropout, which hurts
on the whole corpus (the dropout study shows why). `gelu = False` (`--set gelu=false`) keeps the
ReLU: this rung is then the `layernorm` rung exactly (a test pins it), which is how the
leave-one-out study takes the piece out of the final modern rung.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from stages.layernorm import Block as LayerNormBlock
from stages.layernorm import Model as LayerNormModel
from stages.residual import Config as ResidualConfig
from stages.residual import FeedForward as ResidualFeedForward

ADDS = "GELU instead of ReLU in the feed-forward layer"
LECTURE_VAL_LOSS = None


@dataclass(frozen=True)
class Config(ResidualConfig):
    gelu: bool = True  # False: ReLU, as the rung before (the leave-one-out study)


class FeedForward(ResidualFeedForward):
    """Expand to 4 * n_embd, the activation, project back into the residual stream."""

    def build_layers(self, config: Config) -> list[nn.Module]:
        expand, _relu, project = super().build_layers(config)
        return [expand, self.build_activation(config), project]

    def build_activation(self, config: Config) -> nn.Module:
        return nn.GELU() if config.gelu else nn.ReLU()


class Block(LayerNormBlock):
    def build_computation(self, config: Config) -> nn.Module:
        return FeedForward(config)


class Model(LayerNormModel):
    def build_block(self, config: Config) -> nn.Module:
        return Block(config)
