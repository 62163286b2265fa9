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
schedule and weight decay. Its step is taken here for all matrices of one shape at once
(`BatchedMuon`): `torch.optim.Muon` orthogonalises its matrices one at a time, about thirty small
operations each; stacked by shape, the same arithmetic runs as batched matrix products, to the
same weights bit for bit (`tests/test_modern.py`), and the top rung's training step on one CPU
thread takes 26.1 ms instead of 30.6 (`python bench/levers.py modern`).

Why it should help: a gradient step on a weight matrix is dominated by a few large singular
directions; orthogonalising it lets the rare directions learn too, which measured as faster
training per step in the speedruns.

`muon = False` (`--set muon=false`) trains everything with AdamW: the rung before exactly (the
leave-one-out study). The core asks the model for its optimizer (`make_optimizer`); it never
looks at a stage's name.
"""
from __future__ import annotations

import math
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


class BatchedMuon(torch.optim.Muon):
    """`torch.optim.Muon` (its settings, checks and state) with the step taken for every matrix of one shape
    at once: the momentum, the Newton-Schulz iterations and the update as batched operations over a stack
    of the matrices, in the order and precision `torch.optim.Muon` uses for each one alone."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            by_shape: dict[tuple[int, ...], list[nn.Parameter]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse or torch.is_complex(p):
                    raise RuntimeError("Muon supports only dense real gradients")
                if "momentum_buffer" not in self.state[p]:
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
                by_shape.setdefault(tuple(p.shape), []).append(p)
            for shape, same in by_shape.items():
                self._step_matrices(same, shape, group)
        return loss

    def _step_matrices(self, params: list[nn.Parameter], shape: tuple[int, ...], group: dict[str, Any]) -> None:
        """One Muon step for matrices of one shape, stacked: (G, rows, cols)."""
        grads = [p.grad for p in params]
        buffers = [self.state[p]["momentum_buffer"] for p in params]
        momentum = group["momentum"]
        torch._foreach_lerp_(buffers, grads, 1 - momentum)  # buffer <- momentum * buffer + (1 - momentum) * grad
        updates = torch._foreach_lerp(grads, buffers, momentum) if group["nesterov"] else buffers
        tall = shape[0] > shape[1]  # orthogonalise the wide way round: the Gram matrix is the smaller side's
        stack = torch.stack(updates).bfloat16()  # (G, rows, cols)
        if tall:
            stack = stack.mT
        stack = orthogonalise(stack, group["ns_coefficients"], group["ns_steps"], group["eps"])
        if tall:
            stack = stack.mT
        lr, rows, cols = group["lr"], shape[0], shape[1]
        scale = {"original": math.sqrt(max(1, rows / cols)), None: math.sqrt(max(1, rows / cols)),
                 "match_rms_adamw": 0.2 * math.sqrt(max(rows, cols))}[group["adjust_lr_fn"]]
        torch._foreach_mul_(params, 1 - lr * group["weight_decay"])  # decoupled weight decay
        torch._foreach_add_(params, list(stack.unbind(0)), alpha=-lr * scale)


def orthogonalise(stack: torch.Tensor, coefficients: tuple[float, float, float], steps: int,
                  eps: float) -> torch.Tensor:
    """Newton-Schulz iterations towards the nearest semi-orthogonal matrix of each (rows <= cols) matrix in
    the stack (G, rows, cols): scaled to norm 1 (every singular value at most 1), then each iteration maps
    every singular value s to a*s + b*s^3 + c*s^5, which pushes them all towards 1 (to about 0.7..1.2 after
    five: the quintic is tuned for speed, not convergence)."""
    a, b, c = coefficients
    x = stack / stack.norm(dim=(1, 2), keepdim=True).clamp(min=eps)  # (G, r, c)
    for _ in range(steps):
        gram = x @ x.mT  # (G, r, r)
        poly = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)  # b * gram + c * gram @ gram
        x = torch.baddbmm(x, poly, x, beta=a)  # a * x + poly @ x
    return x


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
        muon = BatchedMuon(matrices, lr=train_config.learning_rate, weight_decay=train_config.weight_decay,
                           adjust_lr_fn="match_rms_adamw")
        return Optimizers([muon, adamw(rest)])
