"""Modern piece — zero_init: each sub-layer's output projection starts at zero.

What it adds: the last linear layer of the attention (`proj`) and of the feed-forward layer
start with zero weights and biases, as in modded-nanogpt (and the "ReZero"/"Fixup" line of work,
2019-2020). At initialisation every block is then the identity: the residual stream carries the
token's embedding straight to the head, and each block learns to add to it.

Why it should help: a deep stack starts as a shallow one, with no random noise added to the
stream by untrained blocks, and grows its depth as training finds a use for it.

It is measured as a step from the top rung of the modern ladder (the piece it would join).
"""
from __future__ import annotations

import torch.nn as nn

from stages.qk_norm import Config
from stages.qk_norm import Model as QKNormModel

ADDS = "zero-initialised output projections (each block starts as the identity)"
LECTURE_VAL_LOSS = None


class Model(QKNormModel):
    def __init__(self, config: Config):
        super().__init__(config)
        for block in self.blocks:
            for layer in (block.sa.proj, block.ffwd.net[-1]):  # what each sub-layer adds to the stream
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
