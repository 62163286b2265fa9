"""How noisy is a sampled validation loss? The measurement behind scoring the whole split.

For the committed weights of a few `cpu` rungs, draws the validation estimate the curves use
(`eval_iters` random batches, as `common.train.estimate_loss` does) several times with different
windows, and prints the mean and standard deviation of those estimates beside the loss over the whole
validation split (`common.train.split_loss`, what a run's final evaluation reports):

    python bench/eval_noise.py                     # residual, layernorm, scaled; 8 draws of 50 batches
    python bench/eval_noise.py --stages bigram --draws 20
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.data import get_batch, load_dataset  # noqa: E402
from common.profiles import get_profile, settings_for  # noqa: E402
from common.run import Stage  # noqa: E402
from common.train import split_loss  # noqa: E402
from common.weights import load_trained  # noqa: E402
from stages import STAGE_NAMES, STAGES  # noqa: E402


@torch.no_grad()
def sampled_losses(model, val: torch.Tensor, block_size: int, batch_size: int, batches: int, draws: int) -> list[float]:
    """`draws` estimates of the validation loss, each the mean over `batches` random batches."""
    estimates = []
    for draw in range(draws):
        generator = torch.Generator().manual_seed(1_000 + draw)
        losses = [model(*get_batch(val, block_size, batch_size, generator))[1].item() for _ in range(batches)]
        estimates.append(sum(losses) / len(losses))
    return estimates


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stages", nargs="+", choices=STAGE_NAMES, default=["residual", "layernorm", "scaled"])
    p.add_argument("--draws", type=int, default=8, help="sampled estimates per rung (default 8)")
    p.add_argument("--results", default=str(ROOT / "results" / "cpu"), help="a results folder with weights")
    args = p.parse_args(argv)
    profile = get_profile("cpu")
    val = load_dataset().val
    print(f"| stage | sampled: mean of {args.draws} | sampled: sd | whole split |")
    print("|---|---:|---:|---:|")
    for name in args.stages:
        trained = load_trained(Path(args.results), Stage.from_module(name, STAGES[name]), "cpu", 0, False)
        model = trained.model.float().eval()
        settings = settings_for(profile, name)
        T, B = model.config.block_size, settings["batch_size"]
        estimates = sampled_losses(model, val, T, B, settings["eval_iters"], args.draws)
        print(f"| {name} | {statistics.mean(estimates):.4f} | {statistics.stdev(estimates):.4f} | "
              f"{split_loss(model, val, T, B):.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
