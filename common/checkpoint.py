"""Checkpoints that describe themselves: weights, optimizer, configs, step, curve, vocabulary.

Sampling or resuming needs nothing but the file. Written atomically (see common/io.py).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from common.config import TrainConfig
from common.errors import LadderError
from common.io import atomic_path
from common.train import TrainState

FORMAT_VERSION = 1
REQUIRED_KEYS = ("stage", "profile", "model_config", "vocabulary", "model", "step", "curve")


def save_checkpoint(path: str | os.PathLike, *, model: torch.nn.Module, state: TrainState, stage: str, profile: str,
                    seed: int, train_config: TrainConfig,
                    vocabulary: str, complete: bool, extra: dict[str, Any] | None = None) -> None:
    module = getattr(model, "_orig_mod", model)  # the weights of the uncompiled module
    checkpoint = {
        "format_version": FORMAT_VERSION,
        "stage": stage,
        "profile": profile,
        "seed": seed,
        "model_config": dataclasses.asdict(module.config),
        "train_config": dataclasses.asdict(train_config),
        "vocabulary": vocabulary,
        "model": module.state_dict(),
        "optimizer": state.optimizer,  # captured with the step, see common.train
        "step": state.step,
        "curve": state.curve,
        "best_val_loss": min((row["val_loss"] for row in state.curve), default=None),
        "batch_rng": state.batch_rng,
        "torch_rng": state.torch_rng,
        "device_rng": state.device_rng,
        "elapsed": state.elapsed,
        "complete": complete,  # False while training, True once max_iters are done
        **(extra or {}),
    }
    try:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
    except (RuntimeError, OSError) as exc:  # torch.save reports a full disk as a RuntimeError
        raise LadderError(f"cannot write checkpoint {path} ({str(exc).splitlines()[0]}): free some disk space or "
                          f"fix the permissions, then run again with --resume") from None


def load_checkpoint(path: str | os.PathLike, *, stage: str | None = None, profile: str | None = None,
                    vocabulary: str | None = None) -> dict[str, Any]:
    """Load a checkpoint onto the CPU, checking it belongs to the stage, profile and vocabulary given.

    Anything wrong (missing, unreadable, not ours, a newer format, another stage, profile or
    vocabulary) is a LadderError whose message says what to do; the file is never modified.
    """
    path = Path(path)
    if not path.is_file():
        raise LadderError(f"no checkpoint at {path}: train the stage first (python runner.py --stage {stage or '<stage>'})")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain data only
    except Exception as exc:  # a damaged or foreign file
        raise LadderError(f"checkpoint {path} cannot be read ({type(exc).__name__}): delete it and train again "
                          f"with --force") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("format_version"), int):
        raise LadderError(f"{path} is not a GPT Ladder checkpoint: delete it and train again with --force")
    if checkpoint["format_version"] > FORMAT_VERSION:
        raise LadderError(f"checkpoint {path} has format {checkpoint['format_version']}, newer than this code "
                          f"understands ({FORMAT_VERSION}): update GPT Ladder, or retrain with --force")
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise LadderError(f"checkpoint {path} is incomplete (no {', '.join(missing)}): delete it and train again "
                          f"with --force")
    for key, want in (("stage", stage), ("profile", profile), ("vocabulary", vocabulary)):
        if want is not None and checkpoint.get(key) != want:
            if key == "vocabulary":
                what = (f"a different vocabulary ({len(checkpoint.get('vocabulary') or '')} characters, this corpus "
                        f"has {len(want)})")
                fix = "use the corpus it was trained on (--data), or retrain with --force"
            else:
                what = f"{key} {checkpoint.get(key)!r}, not {want!r}"
                fix = f"it does not belong in this results folder; retrain the {want} {key} with --force"
            raise LadderError(f"checkpoint {path} was made with {what}: {fix}")
    return checkpoint


def train_state_from(checkpoint: dict[str, Any]) -> TrainState:
    return TrainState(step=checkpoint["step"], curve=list(checkpoint["curve"]), optimizer=checkpoint["optimizer"],
                      batch_rng=checkpoint["batch_rng"], torch_rng=checkpoint["torch_rng"],
                      device_rng=checkpoint.get("device_rng", checkpoint.get("cuda_rng")),  # "cuda_rng" before MPS's
                      elapsed=checkpoint.get("elapsed", 0.0))
