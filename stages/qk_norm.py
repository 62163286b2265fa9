"""Modern rung 4 — qk_norm: queries and keys normalised per head before their dot product.

What it adds: an RMSNorm (with a learned gain) on each head's query and on its key, just before
the rotary embedding and the scores, per head as in Gemma 3 (2025) and modded-nanogpt (OLMo 2, 2024,
normalises the whole query and key projections instead). QK-norm itself: Henry et al. 2020
("Query-Key Normalization for Transformers", an L2 norm with a learned scale), taken to scale by
ViT-22B (Dehghani et al. 2023, a LayerNorm). Each query and key then has a root-mean-square of
one times its gain, so a score is a (scaled) cosine similarity whose range the gains set.

Why it should help: without it the scores grow with the size of the query and key weights; when
a few grow large, their softmax saturates into one-hot attention whose gradient vanishes (the
attention-logit growth that made large runs diverge). Bounded scores keep every head trainable
at high learning rates and with optimizers that move all directions of a matrix at once (Muon).

`qk_norm = False` (`--set qk_norm=false`) leaves queries and keys as they are: the rung before
exactly (the leave-one-out study).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from stages.muon import Config as MuonConfig
from stages.muon import Model as MuonModel
from stages.rope import Block as RopeBlock
from stages.rope import MultiHeadAttention as RopeMultiHeadAttention

ADDS = "RMSNorm on each head's queries and keys"
LECTURE_VAL_LOSS = None


@dataclass(frozen=True)
class Config(MuonConfig):
    qk_norm: bool = True  # False: queries and keys as they are, as the rung before (the leave-one-out study)


class MultiHeadAttention(RopeMultiHeadAttention):
    """The heads, with each query and key normalised to unit root-mean-square (times a learned gain)."""

    def __init__(self, config: Config):
        super().__init__(config)
        head_size = config.n_embd // config.n_head
        self.q_norm = nn.RMSNorm(head_size) if config.qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(head_size) if config.qk_norm else nn.Identity()

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return super().attend(self.q_norm(q), self.k_norm(k), v)  # normalised, then rotated: (B, nh, T, hs)


class Block(RopeBlock):
    def build_communication(self, config: Config) -> nn.Module:
        return MultiHeadAttention(config)


class Model(MuonModel):
    def build_block(self, config: Config) -> nn.Module:
        return Block(config)
