"""The lecture's gpt.py model in its original form: the plain reference the benchmark compares against.

This is Karpathy's final `gpt.py` from "Let's build GPT" as written in the lecture, changed only so
that it can be built from a config object instead of module-level globals:

- `Head`: its own key, query and value projections and its own causal mask (`tril`); the scores
  are scaled by head_size ** -0.5, masked with -inf, soft-maxed explicitly, then dropped out.
- `MultiHeadAttention`: a ModuleList of `Head`s run one after the other, their outputs
  concatenated, then a projection and dropout.
- `FeedForward` (the lecture's `FeedFoward`): Linear(n_embd, 4 n_embd), ReLU, Linear back, dropout.
- `Block`: pre-norm, `x = x + sa(ln1(x))`, `x = x + ffwd(ln2(x))`.
- `GPTLanguageModel`: token and position embeddings, the blocks, ln_f, lm_head; weights
  initialised normal(0, 0.02) with zero biases. fp32 throughout.

It computes the same function as `stages.scaled.Model` (whose attention batches the heads into
one key/query/value projection each); `copy_from_scaled` moves a scaled model's weights into it
and `tests/test_bench.py` checks that both give the same logits and loss. One deliberate
difference from the lecture: the logits are always returned as (B, T, vocab_size) (the lecture
returned a flattened (B*T, vocab_size) view when targets were given; a view costs nothing).

The config object needs vocab_size, block_size, n_embd, n_head, n_layer and dropout (a
`stages.scaled.Config` will do).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn import functional as F


class Head(nn.Module):
    """One head of self-attention."""

    def __init__(self, config, head_size: int):
        super().__init__()
        self.key = nn.Linear(config.n_embd, head_size, bias=False)
        self.query = nn.Linear(config.n_embd, head_size, bias=False)
        self.value = nn.Linear(config.n_embd, head_size, bias=False)
        self.register_buffer("tril", torch.tril(torch.ones(config.block_size, config.block_size)))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # input of size (batch, time-step, channels), output of size (batch, time-step, head size)
        B, T, C = x.shape
        k = self.key(x)  # (B, T, hs)
        q = self.query(x)  # (B, T, hs)
        # compute attention scores ("affinities")
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5  # (B, T, hs) @ (B, hs, T) -> (B, T, T)
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))  # (B, T, T)
        wei = F.softmax(wei, dim=-1)  # (B, T, T)
        wei = self.dropout(wei)
        # perform the weighted aggregation of the values
        v = self.value(x)  # (B, T, hs)
        out = wei @ v  # (B, T, T) @ (B, T, hs) -> (B, T, hs)
        return out


class MultiHeadAttention(nn.Module):
    """Multiple heads of self-attention in parallel."""

    def __init__(self, config, num_heads: int, head_size: int):
        super().__init__()
        self.heads = nn.ModuleList([Head(config, head_size) for _ in range(num_heads)])
        self.proj = nn.Linear(head_size * num_heads, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([h(x) for h in self.heads], dim=-1)  # (B, T, num_heads * hs)
        out = self.dropout(self.proj(out))
        return out


class FeedForward(nn.Module):
    """A simple linear layer followed by a non-linearity (the lecture's `FeedFoward`)."""

    def __init__(self, config):
        super().__init__()
        n_embd = config.n_embd
        self.net = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),
            nn.ReLU(),
            nn.Linear(4 * n_embd, n_embd),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Block(nn.Module):
    """Transformer block: communication followed by computation."""

    def __init__(self, config):
        super().__init__()
        head_size = config.n_embd // config.n_head
        self.sa = MultiHeadAttention(config, config.n_head, head_size)
        self.ffwd = FeedForward(config)
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.sa(self.ln1(x))
        x = x + self.ffwd(self.ln2(x))
        return x


class GPTLanguageModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        # each token directly reads off the logits for the next token from a lookup table
        self.token_embedding_table = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding_table = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.Sequential(*[Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd)  # final layer norm
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        B, T = idx.shape
        # idx and targets are both (B, T) tensors of integers
        tok_emb = self.token_embedding_table(idx)  # (B, T, C)
        pos_emb = self.position_embedding_table(torch.arange(T, device=idx.device))  # (T, C)
        x = tok_emb + pos_emb  # (B, T, C)
        x = self.blocks(x)  # (B, T, C)
        x = self.ln_f(x)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, vocab_size)

        if targets is None:
            loss = None
        else:
            B, T, C = logits.shape
            # reshape, not the lecture's view: the project's get_batch returns targets as a strided
            # slice of one (B, T+1) gather, where the lecture's torch.stack made them contiguous
            loss = F.cross_entropy(logits.view(B * T, C), targets.reshape(B * T))
        return logits, loss


Model = GPTLanguageModel  # the project's name for a stage's model class


@torch.no_grad()
def copy_from_scaled(reference: GPTLanguageModel, scaled: nn.Module) -> GPTLanguageModel:
    """Copy the weights of a `stages.scaled.Model` (same config) into `reference`; returns it.

    The scaled model holds all heads' key, query and value projections in one Linear of width
    n_embd each: head h's output features are rows [h*hs : (h+1)*hs] of its weight, which become
    the weight of the reference's `heads[h]`. Every other weight maps one to one.
    """
    cfg = reference.config
    hs = cfg.n_embd // cfg.n_head
    scaled = getattr(scaled, "_orig_mod", scaled)  # a torch.compile'd model's own module

    def copy(dst: nn.Module, src: nn.Module) -> None:
        for name, p in src.named_parameters():
            dst.get_parameter(name).copy_(p)

    copy(reference.token_embedding_table, scaled.token_embedding_table)
    copy(reference.position_embedding_table, scaled.position_embedding_table)
    copy(reference.ln_f, scaled.ln_f)
    copy(reference.lm_head, scaled.lm_head)
    if len(reference.blocks) != len(scaled.blocks):
        raise ValueError(f"reference has {len(reference.blocks)} blocks, the scaled model {len(scaled.blocks)}")
    for ref_block, block in zip(reference.blocks, scaled.blocks):
        copy(ref_block.ln1, block.ln1)
        copy(ref_block.ln2, block.ln2)
        for h, head in enumerate(ref_block.sa.heads):
            rows = slice(h * hs, (h + 1) * hs)
            head.key.weight.copy_(block.sa.key.weight[rows])
            head.query.weight.copy_(block.sa.query.weight[rows])
            head.value.weight.copy_(block.sa.value.weight[rows])
        copy(ref_block.sa.proj, block.sa.proj)
        # FeedForward: Linear, ReLU, Linear, Dropout in both
        copy(ref_block.ffwd.net, block.ffwd.net)
    return reference
