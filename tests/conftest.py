"""Shared fixtures: the corpus, the dataset, and tiny configurations for every stage.

The corpus is found as a user's machine finds it: $GPT_LADDER_DATA, the project's cache
data/tinyshakespeare.txt, else the verified download into that cache.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

# The models here are tiny: one intra-op thread is fastest, and on a small, busy machine (2 cores
# shared with a training job) several spinning OpenMP threads can make each forward pass ~100x
# slower. Override with GPT_LADDER_TEST_THREADS.
torch.set_num_threads(int(os.environ.get("GPT_LADDER_TEST_THREADS", "1")))

REPO_ROOT = Path(__file__).resolve().parent.parent

# precision="auto" measures fp32 against bf16 once per machine and model size and caches the choice
# (common/precision.py): the tests keep their own cache, apart from the user's (runner subprocesses inherit it).
os.environ.setdefault("GPT_LADDER_CACHE", tempfile.mkdtemp(prefix="gpt-ladder-test-cache-"))
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from common.data import load_dataset  # noqa: E402
from common.profiles import make_configs  # noqa: E402
from stages import STAGES  # noqa: E402

VOCAB = 65  # distinct characters of Tiny Shakespeare

# A tiny configuration every stage accepts (each stage's Config takes the fields it has).
# init="gpt2" makes every stage start at the uniform guess, which several tests check.
TINY = dict(block_size=8, n_embd=16, n_head=2, n_layer=2, dropout=0.1, init="gpt2",
            batch_size=16, learning_rate=3e-3, max_iters=150, eval_interval=150, eval_iters=5)


def tiny_configs(stage: str, **overrides):
    """(model config, TrainConfig) of stage `stage` with the TINY settings, updated by overrides."""
    return make_configs(STAGES[stage].Config, {**TINY, **overrides}, VOCAB)


def random_tokens(B: int, T: int, seed: int = 0) -> torch.Tensor:
    """(B, T) token ids drawn from the vocabulary by their own seeded generator."""
    return torch.randint(VOCAB, (B, T), generator=torch.Generator().manual_seed(seed))


def tiny_model(stage: str, seed: int = 0, **overrides):
    """A freshly initialised model of stage `stage` with the TINY settings (seeded)."""
    config, _ = tiny_configs(stage, **overrides)
    torch.manual_seed(seed)
    return STAGES[stage].Model(config)


def smoke_context(out, corpus_path, dataset=None, overrides=None, device="cpu", **options):
    """What the runner hands a run: the smoke profile on `device` (the CPU unless asked), results under `out`;
    other RunOptions fields (resume, force, ...) as keywords, and a loaded `dataset` to save reading the corpus
    again."""
    from common.profiles import get_profile
    from common.run import RunContext, RunOptions, Stage, stage_fingerprints
    run_options = RunOptions("smoke", dict(overrides or {}), str(out), str(corpus_path), device, progress=False,
                             **options)
    stages = {name: Stage.from_module(name, module) for name, module in STAGES.items()}
    return RunContext(run_options, get_profile("smoke"), stages, dataset or load_dataset(corpus_path),
                      torch.device(device), stage_fingerprints(stages))


@pytest.fixture(scope="session")
def corpus_path() -> Path:
    """The corpus as the project finds it: $GPT_LADDER_DATA, else the project's own cache
    data/tinyshakespeare.txt, else the verified download into that cache."""
    from common.corpus import locate_corpus
    from common.errors import LadderError

    try:
        return locate_corpus()
    except LadderError as exc:
        pytest.fail(f"Tiny Shakespeare corpus not found: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def corpus_text(corpus_path: Path) -> str:
    return corpus_path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def dataset(corpus_path: Path):
    return load_dataset(corpus_path)
