"""Modern piece — tied: the head reads the logits with the token embedding's own matrix.

What it adds: weight tying (Press and Wolf 2017; GPT-2 2019, and nanoGPT): the token embedding
table and the linear head share one (vocab_size, n_embd) tensor, the head's (as nanoGPT ties
them), so a character's input vector and its output vector are the same. The shared tensor starts as
the head's: under PyTorch's default initialisation (the cpu profile's) uniform within ±1/sqrt(n_embd),
a standard deviation of about 0.07 at n_embd 64, where the untied table starts at N(0, 1); under
GPT-2's initialisation both would start at N(0, 0.02).

Why it should help: one matrix fewer to learn (vocab_size * n_embd parameters), and what the model
learns about a character as input also shapes how it predicts it. It pays most when the
vocabulary is large; here it has 65 characters.

It is measured as a step from the top rung of the modern ladder (the piece it would join).
"""
from __future__ import annotations

from stages.qk_norm import Config
from stages.qk_norm import Model as QKNormModel

ADDS = "the token embedding and the head share one matrix"
LECTURE_VAL_LOSS = None


class Model(QKNormModel):
    def __init__(self, config: Config):
        super().__init__(config)
        self.token_embedding_table.weight = self.lm_head.weight  # one tensor, (vocab_size, n_embd)
