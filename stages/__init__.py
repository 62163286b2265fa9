"""The stages, in their ladders. Each module has `Config`, `Model`, `ADDS` and `LECTURE_VAL_LOSS`;
each imports its predecessor's pieces and defines only its own.

Two ladders, as data: the lecture's nine rungs (`STAGE_NAMES`, bigram to scaled), and the modern
ladder, which starts at the lecture's `layernorm` rung (its GPT without dropout) and adds one
post-lecture piece per rung (`MODERN_LADDER`). The pieces measured but left out of the modern ladder
(`MODERN_LEFT_OUT`, docs/modern.md says why) are stage files too, each a step from the ladder's top rung.

The names are plain data; `STAGES` (name -> module) imports the stage modules, and with them torch,
on first use, so that `runner.py --help` answers at once.
"""
from __future__ import annotations

import importlib
import warnings

# Under bf16 autocast an nn.RMSNorm on the queries and keys (the qk_norm rung, and every piece built on it) meets a
# bf16 input and its fp32 gain; PyTorch then computes the same norm with separate operations instead of its fused
# kernel and says so once per process: repeated by every worker (and by the precision probe), a warning that leaves
# the user nothing to do. Set where the stages are loaded: before any model is built, in every process.
warnings.filterwarnings("ignore", message="Mismatch dtype between input and weight", category=UserWarning)

STAGE_NAMES = ["bigram", "averaging", "single_head", "multi_head", "mlp", "residual", "layernorm", "dropout",
               "scaled"]
MODERN_LADDER = ["layernorm", "gelu", "rope", "muon", "qk_norm"]
MODERN_LEFT_OUT = ["rmsnorm", "swiglu", "no_bias", "relu2", "zero_init", "softcap", "tied"]
LADDERS = {"lecture": STAGE_NAMES, "modern": MODERN_LADDER}
ALL_STAGE_NAMES = list(dict.fromkeys(STAGE_NAMES + MODERN_LADDER + MODERN_LEFT_OUT))


def __getattr__(name: str):
    if name == "STAGES":
        globals()["STAGES"] = {stage: importlib.import_module(f"stages.{stage}") for stage in ALL_STAGE_NAMES}
        return globals()["STAGES"]
    raise AttributeError(f"module 'stages' has no attribute {name!r}")


def predecessor(name: str) -> str | None:
    """The stage `name` is measured against: the rung before it in its ladder (None for the first), or for a
    piece left out of the modern ladder, the ladder's top rung (the one it would join)."""
    if name in MODERN_LEFT_OUT:
        return MODERN_LADDER[-1]
    ladder = STAGE_NAMES if name in STAGE_NAMES else MODERN_LADDER
    i = ladder.index(name)
    return ladder[i - 1] if i > 0 else None
