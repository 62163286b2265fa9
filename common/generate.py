"""Sampling text from any stage: one function, because every model has the same contract."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from common.data import CharTokenizer
from common.errors import LadderError


@torch.no_grad()
def generate(model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Extend idx (B, T) by max_new_tokens sampled tokens, feeding at most block_size of context."""
    if temperature <= 0:
        raise LadderError(f"temperature must be positive, got {temperature}")
    if top_k is not None and top_k <= 0:
        raise LadderError(f"top-k must be a positive integer, got {top_k}")
    block_size = model.config.block_size
    was_training = model.training
    model.eval()
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
    model.train(was_training)
    return idx


def sample_text(model: torch.nn.Module, tokenizer: CharTokenizer, max_new_tokens: int = 500, prompt: str = "",
                temperature: float = 1.0, top_k: int | None = None, seed: int = 0) -> str:
    """Text from the model: the prompt (or a newline) followed by max_new_tokens sampled characters."""
    device = next(model.parameters()).device
    start = tokenizer.encode(prompt) if prompt else tokenizer.encode("\n") if "\n" in tokenizer.stoi else [0]
    idx = torch.tensor([start], dtype=torch.long, device=device)  # (1, T)
    generator = torch.Generator(device=device).manual_seed(seed)
    out = generate(model, idx, max_new_tokens, temperature, top_k, generator)
    return tokenizer.decode(out[0].tolist())[0 if prompt else len(start):]
