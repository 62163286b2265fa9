"""Modern piece — no_bias: every linear layer and every norm without its bias.

What it adds: nothing; it takes away. PaLM (2022) dropped the biases of all dense layers and
layer norms, and Llama and most GPTs since followed. Here every `nn.Linear` (attention,
feed-forward, the head) and every `nn.LayerNorm` of the model loses its bias parameter.

Why it should help: PaLM reported that training was more stable at scale without biases; they
are a small share of the parameters, and a pre-norm network can shift values with its gains.

It is measured as a step from the top rung of the modern ladder (the piece it would join).
"""
from __future__ import annotations

import torch.nn as nn

from stages.qk_norm import Config
from stages.qk_norm import Model as QKNormModel

ADDS = "no biases in linear layers and norms"
LECTURE_VAL_LOSS = None


class Model(QKNormModel):
    def __init__(self, config: Config):
        super().__init__(config)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.LayerNorm)) and module.bias is not None:
                module.register_parameter("bias", None)  # the layer now computes x @ W.T (or the norm's gain alone)
