"""Modern piece — rmsnorm: LayerNorm becomes RMSNorm, in every block and before the head.

What it adds: RMSNorm (Zhang and Sennrich 2019; Llama 2023 and most GPTs since) in place of each
LayerNorm. LayerNorm subtracts each vector's mean, divides by its standard deviation, then
applies a gain and a bias; RMSNorm only divides by the root-mean-square and applies the gain: no
centring, no bias. PyTorch's own `nn.RMSNorm`.

Why it should help: the same steadying of scale for less work (one statistic, not two, and no
bias); the authors found the re-centring contributes little.

It is measured as a step from the top rung of the modern ladder (the piece it would join).
"""
from __future__ import annotations

import torch.nn as nn

from stages.qk_norm import Block as QKNormBlock
from stages.qk_norm import Config
from stages.qk_norm import Model as QKNormModel

ADDS = "RMSNorm instead of LayerNorm"
LECTURE_VAL_LOSS = None


class Block(QKNormBlock):
    def __init__(self, config: Config):
        super().__init__(config)
        self.ln1 = nn.RMSNorm(config.n_embd)
        self.ln2 = nn.RMSNorm(config.n_embd)


class Model(QKNormModel):
    def build_block(self, config: Config) -> nn.Module:
        return Block(config)

    def build_final_norm(self, config: Config) -> nn.Module:
        return nn.RMSNorm(config.n_embd)
