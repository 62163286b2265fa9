"""Modern rung 2 — rope: positions enter attention as rotations of queries and keys.

What it adds: rotary position embeddings (Su et al. 2021, RoFormer; used by GPT-NeoX, PaLM and
Llama). The learned table of absolute positions added to the token embeddings is gone. Instead,
in every head, each pair of query (and key) coordinates (i, i + head_size / 2) at position t is
rotated by the angle t * theta_i, with theta_i = 10000 ** (-2i / head_size): fast-turning pairs for fine
position, slow ones for coarse. A rotation keeps lengths, and the dot product of a query rotated
by t_q with a key rotated by t_k depends on the angle t_q - t_k alone, so the attention score of
two tokens depends on their contents and their *offset*, not on where they stand in the window.

Why it should help: what matters to the next character is how far back something was ("three
letters ago"), not its absolute place in an arbitrary 32-character window; the learned table had
to learn every offset at every position separately, and spent parameters on it.

`rope = False` (`--set rope=false`) keeps the learned position table and no rotation: the rung
before exactly (the leave-one-out study).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from stages.gelu import Block as GeluBlock
from stages.gelu import Config as GeluConfig
from stages.gelu import Model as GeluModel
from stages.residual import MultiHeadAttention as ResidualMultiHeadAttention

ADDS = "rotary position embeddings instead of the learned position table"
LECTURE_VAL_LOSS = None
ROPE_BASE = 10_000.0  # RoFormer's and Llama's base wavelength


@dataclass(frozen=True)
class Config(GeluConfig):
    rope: bool = True  # False: the learned position table, as the rung before (the leave-one-out study)

    def __post_init__(self) -> None:
        super().__post_init__()
        head_size = self.n_embd // self.n_head
        if self.rope and head_size % 2:  # the rotation turns coordinates in pairs
            raise ValueError(f"rotary embeddings need an even head size (n_embd / n_head), got {self.n_embd} / "
                             f"{self.n_head} = {head_size}")


def rotary_angles(block_size: int, head_size: int) -> torch.Tensor:
    """(block_size, head_size): the angle t * theta_i of position t for coordinate pair i, written for both
    coordinates of the pair (i and i + head_size / 2)."""
    theta = ROPE_BASE ** (-torch.arange(0, head_size, 2, dtype=torch.float32) / head_size)  # (hs/2,)
    angles = torch.outer(torch.arange(block_size, dtype=torch.float32), theta)  # (block_size, hs/2)
    return torch.cat([angles, angles], dim=-1)  # (block_size, hs)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each coordinate pair (i, i + hs/2) of x (..., T, hs) by the angles whose cos and sin are (T, hs).

    The pairs are the two halves of the head, side by side (GPT-NeoX's layout): contiguous slices,
    where RoFormer's neighbouring pairs (2i, 2i+1) cost strided ones; the same rotations."""
    first, second = x.chunk(2, dim=-1)  # (..., T, hs/2) each
    turned = torch.cat([-second, first], dim=-1)  # (..., T, hs): each pair turned by a right angle
    return x * cos.to(x.dtype) + turned * sin.to(x.dtype)  # (..., T, hs)


class MultiHeadAttention(ResidualMultiHeadAttention):
    """The heads, with each query and key rotated by its position before the scores are taken."""

    def __init__(self, config: Config):
        super().__init__(config)
        self.rope = config.rope
        angles = rotary_angles(config.block_size, config.n_embd // config.n_head)  # (block_size, hs)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.rope:
            T = q.shape[-2]
            q = rotate(q, self.cos[:T], self.sin[:T])  # (B, nh, T, hs)
            k = rotate(k, self.cos[:T], self.sin[:T])  # (B, nh, T, hs)
        return super().attend(q, k, v)  # (B, nh, T, hs)


class Block(GeluBlock):
    def build_communication(self, config: Config) -> nn.Module:
        return MultiHeadAttention(config)


class Model(GeluModel):
    def __init__(self, config: Config):
        super().__init__(config)
        if config.rope:  # positions now live in the attention: no table to add
            del self.position_embedding_table

    def build_block(self, config: Config) -> nn.Module:
        return Block(config)

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        if not self.config.rope:
            return super().embed(idx)
        return self.token_embedding_table(idx)  # (B, T, C): the tokens alone, no position added
