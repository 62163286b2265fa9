"""Configuration as data: frozen dataclasses, one comment per field.

The model configuration belongs to each stage (a stage adds a field only when it adds a
setting, see `stages/`); the training configuration is shared by every stage and lives here.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from common.errors import LadderError


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 32  # sequences per optimisation step
    max_iters: int = 5000  # optimisation steps
    learning_rate: float = 1e-3  # AdamW peak learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay (PyTorch's default)
    warmup_iters: int = 0  # linear warm-up steps at the start (0: none, as in the lecture)
    lr_decay: bool = False  # cosine-decay the learning rate to min_lr_ratio * lr by max_iters
    min_lr_ratio: float = 0.1  # final learning rate as a fraction of the peak, with lr_decay
    grad_clip: float = 0.0  # clip the gradient norm to this value (0: no clipping)
    eval_interval: int = 500  # evaluate both splits every this many steps (and at the end)
    eval_iters: int = 200  # batches averaged per split at each evaluation
    precision: str = "auto"  # matmuls in "fp32", "bf16" (autocast) or "auto": the faster here, measured
    train_chars: int = 0  # train on the first train_chars characters of the training split (0: all of it);
    #                       the validation split stays whole, so runs on less text are scored on the same text

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_iters", "eval_interval", "eval_iters"):
            if getattr(self, name) <= 0:
                raise LadderError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("learning_rate", "weight_decay", "min_lr_ratio", "grad_clip"):
            if not math.isfinite(getattr(self, name)):
                raise LadderError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise LadderError(f"learning_rate must be a positive number, got {self.learning_rate}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise LadderError(f"min_lr_ratio must be between 0 and 1, got {self.min_lr_ratio}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise LadderError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.warmup_iters < 0 or self.grad_clip < 0 or self.weight_decay < 0:
            raise LadderError("warmup_iters, grad_clip and weight_decay must not be negative")
        if self.train_chars < 0:
            raise LadderError(f"train_chars must be 0 (the whole training split) or a positive number of "
                              f"characters, got {self.train_chars}")


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def coerce(cls: type, name: str, value: Any) -> Any:
    """Convert `value` (e.g. the text '0.2' from the command line) to the type of `cls.name`."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    default = fields[name].default
    kind = type(default)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind is bool:
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
    elif kind is int and not isinstance(value, (bool, float)):
        try:
            return int(str(value))
        except ValueError:
            pass
    elif kind is float and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    raise LadderError(f"{name} must be of type {kind.__name__}, got {value!r}")


def build(cls: type, values: Mapping[str, Any]):
    """Make a `cls` from the entries of `values` that it has fields for, type-checked."""
    names = field_names(cls)
    return cls(**{k: coerce(cls, k, v) for k, v in values.items() if k in names})
