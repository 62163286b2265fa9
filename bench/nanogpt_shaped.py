"""A nanoGPT-shaped model: the benchmark's second reference, written for this project.

The same sizes as the `scaled` stage (vocab, block, n_embd, n_head, n_layer, dropout) in the form
the fastest small GPT codebases use, so that the benchmark can say how the project's step compares
with a well-tuned one side by side:

- attention: one fused projection to queries, keys and values (`qkv`, n_embd -> 3 n_embd),
  PyTorch's fused causal kernel `scaled_dot_product_attention`, an output projection;
- feed-forward: n_embd -> 4 n_embd, GELU, back to n_embd;
- pre-norm blocks, a final LayerNorm, and the output layer sharing its weight with the token
  embedding (weight tying); no biases; N(0, 0.02) initial weights.

It is not the same function as `scaled` (GELU, tying, no biases), so only its speed is compared.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn import functional as F


class SelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head, self.dropout = config.n_head, config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.out = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.out_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, nh, T, hs)
        return self.out_dropout(self.out(y.transpose(1, 2).reshape(B, T, C)))  # (B, T, C)


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.ln1, self.ln2 = nn.LayerNorm(C, bias=False), nn.LayerNorm(C, bias=False)
        self.attn = SelfAttention(config)
        self.mlp = nn.Sequential(nn.Linear(C, 4 * C, bias=False), nn.GELU(), nn.Linear(4 * C, C, bias=False),
                                 nn.Dropout(config.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))  # (B, T, C)
        return x + self.mlp(self.ln2(x))  # (B, T, C)


class Model(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.tokens = nn.Embedding(config.vocab_size, config.n_embd)
        self.positions = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.Sequential(*[Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=False)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.tokens.weight  # weight tying
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        B, T = idx.shape
        x = self.drop(self.tokens(idx) + self.positions(torch.arange(T, device=idx.device)))  # (B, T, C)
        logits = self.head(self.ln_f(self.blocks(x)))  # (B, T, vocab_size)
        loss = None if targets is None else F.cross_entropy(logits.reshape(B * T, -1).float(), targets.reshape(-1))
        return logits, loss
