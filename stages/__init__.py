"""The nine stages of the ladder, in order. Each module has `Config`, `Model`, `ADDS` and
`LECTURE_VAL_LOSS`; each imports its predecessor's pieces and defines only its own.

`STAGE_NAMES` is plain data; `STAGES` (name -> module) imports the stage modules, and with them
torch, on first use, so that `runner.py --help` answers at once.
"""
from __future__ import annotations

import importlib

STAGE_NAMES = ["bigram", "averaging", "single_head", "multi_head", "mlp", "residual", "layernorm", "dropout",
               "scaled"]


def __getattr__(name: str):
    if name == "STAGES":
        globals()["STAGES"] = {stage: importlib.import_module(f"stages.{stage}") for stage in STAGE_NAMES}
        return globals()["STAGES"]
    raise AttributeError(f"module 'stages' has no attribute {name!r}")


def predecessor(name: str) -> str | None:
    """The stage before `name` in the ladder (None for the first)."""
    i = STAGE_NAMES.index(name)
    return STAGE_NAMES[i - 1] if i > 0 else None
