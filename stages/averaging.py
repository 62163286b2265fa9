"""Stage 2 — averaging (causal bag of words): each token also sees the mean of its past.

What it adds: token and position embeddings of width n_embd, a linear head back to the
vocabulary, and the first communication between positions: the uniform average of the token's
own and all earlier vectors. The average is computed for all positions at once as one matrix
multiply with a lower-triangular matrix whose rows sum to one (the lecture's "weighted
aggregation" trick): `wei @ x` with `wei = tril / row_sums`.

Why it should help: the bigram knows only the current character. The average of the past tells
the model a little about what came before (a run of capitals, whether a line has just begun).

Why the head reads the token's own vector *beside* the average, `lm_head(cat[x, avg(x)])`: the
most useful feature for the next character is still the current one, and a uniform average
cannot single it out (the average of t+1 vectors holds 1/(t+1) of the token's own signal).
Feeding the head the average alone (`lm_head(avg(x))`) measured worse than the bigram in the
issue that set this form (issue 9: 2.83 against 2.57 at the lecture's small setting); beside the
token's own vector it beats the bigram. There is no residual stream yet: the two are concatenated,
not added. The next stage replaces this mechanism with attention, which can weigh the current
character itself. The lecture reported no loss for this step; `results/` shows what it measures.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from stages.bigram import Config as BigramConfig
from stages.bigram import initialise, next_token_loss

ADDS = "embeddings + causal average of the past, beside each token's own vector"
LECTURE_VAL_LOSS = None


@dataclass(frozen=True)
class Config(BigramConfig):
    n_embd: int = 32  # width of the token and position embeddings

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_embd <= 0:
            raise ValueError(f"n_embd must be a positive integer, got {self.n_embd}")


class CausalAverage(nn.Module):
    """Position t receives the uniform mean of positions 0..t, as one lower-triangular matmul."""

    def __init__(self, config: Config):
        super().__init__()
        tril = torch.tril(torch.ones(config.block_size, config.block_size))
        self.register_buffer("wei", tril / tril.sum(dim=1, keepdim=True), persistent=False)  # (block, block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        return self.wei[:T, :T] @ x  # (T, T) @ (B, T, C) -> (B, T, C)


class Block(nn.Module):
    """One step of communication between positions, kept beside each token's own vector."""

    def __init__(self, config: Config):
        super().__init__()
        self.sa = self.build_communication(config)

    def build_communication(self, config: Config) -> nn.Module:
        return CausalAverage(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.sa(x)], dim=-1)  # (B, T, 2C): the token's own vector, then the average


class Model(nn.Module):
    """Embed tokens and positions, pass them through the blocks, read logits off a linear head."""

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.token_embedding_table = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding_table = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.Sequential(*self.build_blocks(config))
        self.ln_f = self.build_final_norm(config)
        self.lm_head = self.build_head(config)
        initialise(self, config.init)

    def build_blocks(self, config: Config) -> list[nn.Module]:
        """One block (the residual stage stacks n_layer of them)."""
        return [self.build_block(config)]

    def build_block(self, config: Config) -> nn.Module:
        """The block each later stage swaps for its own."""
        return Block(config)

    def build_head(self, config: Config) -> nn.Module:
        """The linear head reads the block's output: here the token's vector and the average, side by side."""
        return nn.Linear(2 * config.n_embd, config.vocab_size)

    def build_final_norm(self, config: Config) -> nn.Module:
        """No normalisation before the head yet (the layernorm stage adds one)."""
        return nn.Identity()

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Each token's vector plus its position's: what the blocks read (the rope rung drops the position)."""
        B, T = idx.shape
        tok_emb = self.token_embedding_table(idx)  # (B, T, C)
        pos_emb = self.position_embedding_table(torch.arange(T, device=idx.device))  # (T, C)
        return tok_emb + pos_emb  # (B, T, C)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        x = self.embed(idx)  # (B, T, C)
        x = self.blocks(x)  # (B, T, C), or (B, T, 2C) at this stage
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab_size)
        return logits, next_token_loss(logits, targets)
