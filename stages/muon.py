"""Modern rung 3 — muon: the blocks' weight matrices are trained by Muon, the rest by AdamW.

What it adds: an optimizer, not a layer. Muon (Keller Jordan et al. 2024, from the modded-nanogpt
speedruns; used at scale by Moonshot's Kimi K2, 2025) takes SGD's momentum of each 2-D weight
matrix in the blocks and replaces it, before the step, by the nearest semi-orthogonal matrix (a
few Newton-Schulz iterations push all its singular values towards 1). The update then moves the
matrix by the same amount in every direction its gradient points to, instead of mostly along the
one or two directions that dominate the raw gradient. The embeddings, the head, the norms' gains
and every bias stay with AdamW, as in modded-nanogpt. PyTorch's own `torch.optim.Muon` does the
work, with `adjust_lr_fn="match_rms_adamw"` (Moonshot's scaling, 2025): each update is rescaled to
the size an AdamW update would have, so both optimizers share the profile's one learning rate,
schedule and weight decay.

Why it should help: a gradient step on a weight matrix is dominated by a few large singular
directions; orthogonalising it lets the rare directions learn too, which measured as faster
training per step in the speedruns.

`muon = False` (`--set muon=false`) trains everything with AdamW: the rung before exactly (the
leave-one-out study). The core asks the model for its optimizer (`make_optimizer`); it never
looks at a stage's name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn

from stages.rope import Config as RopeConfig
from stages.rope import Model as RopeModel

ADDS = "the Muon optimizer for the blocks' weight matrices (AdamW for the rest)"
LECTURE_VAL_LOSS = None


@dataclass(frozen=True)
class Config(RopeConfig):
    muon: bool = True  # False: AdamW for every parameter, as the rung before (the leave-one-out study)


class Optimizers:
    """Several optimizers stepped as one: their parameter groups side by side (so a learning-rate
    schedule that sets each group's "lr" reaches all of them), one state dict holding each one's."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """Every optimizer's groups as they are now (load_state_dict, when a run resumes, replaces them)."""
        return [group for opt in self.optimizers for group in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for opt, state in zip(self.optimizers, state_dict["optimizers"], strict=True):
            opt.load_state_dict(state)


class Model(RopeModel):
    def muon_parameters(self) -> list[nn.Parameter]:
        """The weight matrices inside the blocks: attention's query, key, value and projection, the
        feed-forward layer's two matrices. Not the embeddings or the head (they map tokens, not
        features), not gains or biases (vectors have no singular directions)."""
        return [p for p in self.blocks.parameters() if p.ndim == 2]

    def make_optimizer(self, train_config, adamw: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]):
        """Muon for muon_parameters(), the core's AdamW (`adamw(params)`) for every other parameter."""
        if not self.config.muon:
            return adamw(self.parameters())
        matrices = self.muon_parameters()
        chosen = {id(p) for p in matrices}
        rest = [p for p in self.parameters() if id(p) not in chosen]
        muon = torch.optim.Muon(matrices, lr=train_config.learning_rate, weight_decay=train_config.weight_decay,
                                adjust_lr_fn="match_rms_adamw")
        return Optimizers([muon, adamw(rest)])
