"""Sampling text from any stage: one function, because every model has the same contract."""
from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F

from common.data import CharTokenizer
from common.errors import LadderError

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0  # outside these, the softmax over- or underflows


def check_sampling(temperature: float, top_k: int | None) -> None:
    if not (math.isfinite(temperature) and temperature > 0):
        raise LadderError(f"temperature must be positive and finite (from {MIN_TEMPERATURE} to {MAX_TEMPERATURE}), "
                          f"got {temperature}")
    if not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE:
        why = ("lower values make the softmax overflow (use --top-k 1 for the most likely text)"
               if temperature < MIN_TEMPERATURE else "higher values draw every character about equally: noise")
        raise LadderError(f"temperature must be from {MIN_TEMPERATURE} to {MAX_TEMPERATURE}, got {temperature}: {why}")
    if top_k is not None and top_k <= 0:
        raise LadderError(f"top-k must be a positive integer, got {top_k}")


@torch.no_grad()
def stream(model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
           top_k: int | None = None, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Yield max_new_tokens sampled tokens (B, 1), one at a time, after idx (B, T); at most block_size of context."""
    check_sampling(temperature, top_k)
    block_size = model.config.block_size
    was_training = model.training
    model.eval()
    try:
        for _ in range(max_new_tokens):
            idx_cond = idx[:, -block_size:]  # (B, <=block_size): crop to the context the model knows
            logits, _ = model(idx_cond)  # (B, T, vocab_size)
            logits = logits[:, -1, :].float() / temperature  # (B, vocab_size): the last position predicts
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))  # (B, k)
                logits = logits.masked_fill(logits < v[:, [-1]], float("-inf"))
            probs = F.softmax(logits, dim=-1)  # (B, vocab_size)
            idx_next = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
            idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
            yield idx_next
    finally:
        model.train(was_training)


def generate(model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Extend idx (B, T) by max_new_tokens sampled tokens, feeding at most block_size of context."""
    new = list(stream(model, idx, max_new_tokens, temperature, top_k, generator))
    return torch.cat([idx, *new], dim=1) if new else idx


def start_tokens(tokenizer: CharTokenizer, prompt: str) -> list[int]:
    """The prompt's tokens, or a newline (the start of a line) without one."""
    return tokenizer.encode(prompt) if prompt else tokenizer.encode("\n") if "\n" in tokenizer.stoi else [0]


def stream_text(model: torch.nn.Module, tokenizer: CharTokenizer, max_new_tokens: int = 500, prompt: str = "",
                temperature: float = 1.0, top_k: int | None = None, seed: int = 0) -> Iterator[str]:
    """The prompt, then each sampled character as it is generated (seeded: the same seed, the same text)."""
    device = next(model.parameters()).device
    start = start_tokens(tokenizer, prompt)
    idx = torch.tensor([start], dtype=torch.long, device=device)  # (1, T)
    generator = torch.Generator(device=device).manual_seed(seed)
    check_sampling(temperature, top_k)
    if prompt:
        yield prompt
    for token in stream(model, idx, max_new_tokens, temperature, top_k, generator):
        yield tokenizer.decode([token.item()])


def sample_text(model: torch.nn.Module, tokenizer: CharTokenizer, max_new_tokens: int = 500, prompt: str = "",
                temperature: float = 1.0, top_k: int | None = None, seed: int = 0) -> str:
    """Text from the model: the prompt (if any) followed by max_new_tokens sampled characters."""
    return "".join(stream_text(model, tokenizer, max_new_tokens, prompt, temperature, top_k, seed))
