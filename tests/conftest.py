"""Shared fixtures: the corpus, the dataset, and tiny configurations for every stage.

The corpus is taken from $GPT_LADDER_DATA, else from ../shared/data/tinyshakespeare.txt relative to
the repository root. The tests never download anything: a missing corpus is a failure with a
message saying where to put it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# The models here are tiny: one intra-op thread is fastest, and on a small, busy machine (2 cores
# shared with a training job) several spinning OpenMP threads can make each forward pass ~100x
# slower. Override with GPT_LADDER_TEST_THREADS.
torch.set_num_threads(int(os.environ.get("GPT_LADDER_TEST_THREADS", "1")))

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from common.corpus import DATA_ENV  # noqa: E402
from common.data import load_dataset  # noqa: E402
from common.profiles import make_configs  # noqa: E402
from stages import STAGES  # noqa: E402

DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"

VOCAB = 65  # distinct characters of Tiny Shakespeare

# A tiny configuration every stage accepts (each stage's Config takes the fields it has).
# init="gpt2" makes every stage start at the uniform guess, which several tests check.
TINY = dict(block_size=8, n_embd=16, n_head=2, n_layer=2, dropout=0.1, init="gpt2",
            batch_size=16, learning_rate=3e-3, max_iters=150, eval_interval=150, eval_iters=5)


def tiny_configs(stage: str, **overrides):
    """(model config, TrainConfig) of stage `stage` with the TINY settings, updated by overrides."""
    return make_configs(STAGES[stage].Config, {**TINY, **overrides}, VOCAB)


def tiny_model(stage: str, seed: int = 0, **overrides):
    """A freshly initialised model of stage `stage` with the TINY settings (seeded)."""
    config, _ = tiny_configs(stage, **overrides)
    torch.manual_seed(seed)
    return STAGES[stage].Model(config)


@pytest.fixture(scope="session")
def corpus_path() -> Path:
    explicit = os.environ.get(DATA_ENV)
    path = Path(explicit).expanduser() if explicit else DEFAULT_CORPUS
    if not path.is_file():
        source = f"${DATA_ENV}" if explicit else "the default location"
        pytest.fail(
            f"Tiny Shakespeare corpus not found at {path} (from {source}): set {DATA_ENV} to the path "
            f"of tinyshakespeare.txt, or place it at {DEFAULT_CORPUS}",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def corpus_text(corpus_path: Path) -> str:
    return corpus_path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def dataset(corpus_path: Path):
    return load_dataset(corpus_path)
