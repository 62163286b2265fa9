"""The character tokenizer, the train/val split and random batches: what decides a run's numbers.

Where the corpus text comes from is `common/corpus.py`.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from common.corpus import read_corpus
from common.errors import LadderError


class CharTokenizer:
    """Character-level tokenizer: one token per distinct character, ids in sorted order."""

    def __init__(self, chars: str | list[str]):
        self.chars = "".join(chars)
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        if len(self.stoi) != len(self.chars):
            raise ValueError("tokenizer characters must be distinct")

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError as exc:
            raise LadderError(f"character {exc.args[0]!r} is not in the vocabulary of {self.vocab_size} "
                              f"characters: use only characters that occur in the corpus") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)


@dataclass(frozen=True)
class Dataset:
    """The encoded corpus, split into a first part for training and a last part for validation."""

    tokenizer: CharTokenizer
    train: torch.Tensor  # (N_train,) int64 token ids
    val: torch.Tensor  # (N_val,) int64 token ids

    def to(self, device) -> "Dataset":
        return Dataset(self.tokenizer, self.train.to(device), self.val.to(device))

    def split(self, name: str) -> torch.Tensor:
        return self.train if name == "train" else self.val

    def with_train_chars(self, train_chars: int) -> "Dataset":
        """The same dataset training on only the first train_chars characters (0: all); validation unchanged."""
        if not train_chars:
            return self
        return Dataset(self.tokenizer, self.train[:train_chars], self.val)


def make_dataset(text: str, train_fraction: float = 0.9) -> Dataset:
    """Encode the text and split it: the first 90% trains, the last 10% validates (as in the lecture)."""
    tokenizer = CharTokenizer.from_text(text)
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    n = int(train_fraction * len(data))
    return Dataset(tokenizer, data[:n], data[n:])


def load_dataset(path: str | os.PathLike | None = None) -> Dataset:
    text = read_corpus(path)
    if len(set(text)) < 2:
        raise LadderError(f"the corpus has only one distinct character ({text[0]!r}): there is nothing to predict; "
                          f"pass a real text with --data")
    return make_dataset(text)


def check_block_size(dataset: Dataset, block_size: int) -> None:
    """Both splits must hold at least one window of block_size + 1 tokens."""
    if block_size <= 0:
        raise LadderError(f"block_size must be positive, got {block_size}")
    shortest = min(len(dataset.train), len(dataset.val))
    if block_size + 1 > shortest:
        total = len(dataset.train) + len(dataset.val)
        needed = math.ceil((block_size + 1) / 0.1) + 1  # the validation split (10%) must hold block_size + 1
        if shortest < 2:
            raise LadderError(f"the corpus is too short ({total} characters): its validation split (the last 10%) "
                              f"must hold block_size + 1 characters, so block_size {block_size} needs at least "
                              f"{needed} characters; pass a longer text with --data")
        raise LadderError(f"block_size {block_size} is too large for this corpus: the shorter split has only "
                          f"{shortest} tokens; use block_size of at most {shortest - 1} or a corpus of at least "
                          f"{needed} characters")


def check_train_chars(dataset: Dataset, train_chars: int, block_size: int) -> None:
    """train_chars must leave at least one training window and cannot exceed the training split."""
    if not train_chars:
        return
    if train_chars > len(dataset.train):
        raise LadderError(f"train_chars {train_chars:,} is more than the training split holds "
                          f"({len(dataset.train):,} characters): use at most that, or 0 for all of it")
    if train_chars < block_size + 1:
        raise LadderError(f"train_chars {train_chars} is too small for block_size {block_size}: it must hold "
                          f"at least block_size + 1 = {block_size + 1} characters")


def get_batch(data: torch.Tensor, block_size: int, batch_size: int,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of block_size + 1 tokens, gathered in one indexing operation on data's device.

    Returns inputs x and targets y, both (batch_size, block_size); y is x shifted left by one.
    """
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator, device=data.device)  # (B,)
    offsets = torch.arange(block_size + 1, device=data.device)  # (T+1,)
    windows = data[starts[:, None] + offsets]  # (B, T+1)
    return windows[:, :-1], windows[:, 1:]
