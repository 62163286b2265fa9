"""Stage 1 — bigram: the next character from the current one alone.

What it adds: the simplest language model there is. A lookup table (an embedding of width
vocab_size) maps the current token straight to the logits of the next token; no context at all.
Why it helps: it learns character-pair statistics ("q" is followed by "u", a newline by a capital),
taking the loss from about 4.6 at the start (random logits under the default initialisation; the
uniform guess would be ln(65) ≈ 4.17) down to about 2.5.
The lecture reported: val loss about 2.5.

Every later stage honours this file's contract: `Model(config)` and
`forward(idx, targets=None) -> (logits, loss)`, with the loss from `next_token_loss`, and
initialises its weights with `initialise` by the config's `init` scheme.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

ADDS = "lookup table: next token from the current token"
LECTURE_VAL_LOSS = 2.5  # the lecture's bigram, "about 2.5"


INITS = ("pytorch", "gpt2")


@dataclass(frozen=True)
class Config:
    vocab_size: int = 65  # distinct characters (65 in Tiny Shakespeare)
    block_size: int = 8  # context length: the most tokens the model sees at once
    init: str = "pytorch"  # initial weights: "pytorch" (each layer's default) or "gpt2" (normal, std 0.02)

    def __post_init__(self) -> None:
        if self.vocab_size < 2:
            raise ValueError(f"the corpus has {self.vocab_size} distinct character(s); a model needs at least 2")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor | None:
    """Cross-entropy of the logits (B, T, vocab_size) against the next tokens (B, T); None without targets."""
    if targets is None:
        return None
    B, T, V = logits.shape
    return F.cross_entropy(logits.reshape(B * T, V).float(), targets.reshape(B * T))


def gpt2_init(module: nn.Module) -> None:
    """Small initial weights (normal, std 0.02; zero biases), as in GPT-2 and the lecture's final gpt.py.

    With small weights every logit starts near zero, so the initial loss is the uniform guess,
    ln(vocab_size), instead of a confidently wrong prediction.
    """
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def initialise(model: nn.Module, scheme: str) -> None:
    """Set a freshly built model's weights by `scheme` (every stage's model calls this last).

    "pytorch" keeps each layer's own default (embeddings N(0, 1), linear layers uniform in
    +-1/sqrt(fan_in)), as the lecture's models did until its final gpt.py; "gpt2" is `gpt2_init`,
    which suits networks with LayerNorm but starves the un-normalised rungs (see common/profiles.py).
    """
    if scheme == "gpt2":
        model.apply(gpt2_init)


class Model(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        # each token reads off the logits for the next token from a row of this table
        self.token_embedding_table = nn.Embedding(config.vocab_size, config.vocab_size)
        initialise(self, config.init)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits = self.token_embedding_table(idx)  # (B, T, vocab_size)
        return logits, next_token_loss(logits, targets)
