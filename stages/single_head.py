"""Stage 3 — single head: the uniform average becomes learned, content-dependent attention.

What it adds: one causal self-attention head (Vaswani et al. 2017, "Attention Is All You Need").
Each token emits a query ("what am I looking for?") and a key ("what do I contain?"); their dot
products, masked so no token sees the future and normalised with a softmax, replace the uniform
weights of the averaging stage; the tokens' values are then averaged with those weights. The
logits are read off the head's output, as in the lecture (`lm_head(sa(x))`): attention can weigh
the current character itself, so the token's own vector no longer needs to sit beside it, and
there is no residual stream yet (that is the residual stage).
The scores are scaled by head_size ** -0.5 so that at initialisation they have unit variance and
the softmax does not saturate (the lecture's first version scaled by n_embd ** -0.5, a bug).

`fused_attention = True` computes the same attention with PyTorch's fused kernel
(`scaled_dot_product_attention`, causal), for speed on GPUs; tests pin it to the explicit form.

Why it should help: the past is no longer averaged blindly; each character can pick the earlier
characters that matter to it (the vowel after a consonant, the start of the word).
The lecture reported: val loss about 2.4.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from stages.averaging import Block as AveragingBlock
from stages.averaging import Config as AveragingConfig
from stages.averaging import Model as AveragingModel

ADDS = "one self-attention head: learned, content-dependent weights"
LECTURE_VAL_LOSS = 2.4


@dataclass(frozen=True)
class Config(AveragingConfig):
    # compute attention with PyTorch's fused kernel (scaled_dot_product_attention, causal): the same
    # function as the explicit softmax below (tests pin them together), faster on GPUs
    fused_attention: bool = False


class Head(nn.Module):
    """One head of causal self-attention."""

    def __init__(self, config: Config, head_size: int):
        super().__init__()
        self.key = nn.Linear(config.n_embd, head_size, bias=False)
        self.query = nn.Linear(config.n_embd, head_size, bias=False)
        self.value = nn.Linear(config.n_embd, head_size, bias=False)
        self.register_buffer("tril", torch.tril(torch.ones(config.block_size, config.block_size)), persistent=False)
        self.fused = config.fused_attention

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Causal softmax of the scaled scores: (..., T, hs) x (..., T, hs) -> (..., T, T)."""
        T = q.shape[-2]
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5  # (..., T, T)
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))  # no looking ahead
        return F.softmax(wei, dim=-1)  # (..., T, T), each row sums to 1

    def attention_dropout(self) -> float:
        """The probability of dropping an attention weight (none before the dropout stage)."""
        return 0.0

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The values averaged with the attention weights: (..., T, hs) x3 -> (..., T, hs)."""
        if self.fused:  # one kernel for mask, scale, softmax, dropout and the weighted sum
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.attention_dropout(),
                                                  scale=k.shape[-1] ** -0.5)
        return self.attention_weights(q, k) @ v  # (..., T, T) @ (..., T, hs) -> (..., T, hs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.key(x)  # (B, T, hs)
        q = self.query(x)  # (B, T, hs)
        v = self.value(x)  # (B, T, hs)
        return self.attend(q, k, v)  # (B, T, hs)


class Block(AveragingBlock):
    def build_communication(self, config: Config) -> nn.Module:
        return Head(config, head_size=config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sa(x)  # (B, T, C): attention replaces the average and the token's own vector


class Model(AveragingModel):
    def build_block(self, config: Config) -> nn.Module:
        return Block(config)

    def build_head(self, config: Config) -> nn.Module:
        return nn.Linear(config.n_embd, config.vocab_size)  # reads the attention output
