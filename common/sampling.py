"""Text from a trained run: load its checkpoint into its stage's model and sample."""
from __future__ import annotations

import sys
from pathlib import Path

from common.errors import LadderError
from common.run import Stage, run_dir


def load_trained_model(folder: Path, stage: Stage, profile: str, seed: int, device_request: str | None):
    """(model on the device, tokenizer, checkpoint) of a saved run; a LadderError says how to get one."""
    from common.checkpoint import load_checkpoint
    from common.data import CharTokenizer
    from common.device import pick_device

    path = run_dir(folder, stage.name, seed) / "checkpoint.pt"
    if not path.exists():
        committed = (path.parent / "run.json").exists()  # results kept in git come without checkpoints
        raise LadderError(f"stage {stage.name!r} has no checkpoint for profile {profile!r}, seed {seed} "
                          f"(looked for {path}): train it first with "
                          f"python runner.py --stage {stage.name} --profile {profile} --seeds {seed}"
                          + (" --force (its saved result has no checkpoint)" if committed else ""))
    checkpoint = load_checkpoint(path, stage=stage.name, profile=profile)
    tokenizer = CharTokenizer(checkpoint["vocabulary"])
    try:
        model = stage.Model(stage.Config(**checkpoint["model_config"]))
        model.load_state_dict(checkpoint["model"])
    except (TypeError, ValueError, RuntimeError, LadderError):
        raise LadderError(f"checkpoint {path} does not fit the {stage.name} model of this code: retrain it with "
                          f"python runner.py --stage {stage.name} --profile {profile} --force") from None
    return model.to(pick_device(device_request)), tokenizer, checkpoint


def print_sample(folder: Path, stage: Stage, profile: str, seed: int, device_request: str | None, *,
                 tokens: int, prompt: str, temperature: float, top_k: int | None) -> None:
    """Print `tokens` characters from a saved run (a header line goes to stderr)."""
    from common.generate import sample_text

    model, tokenizer, checkpoint = load_trained_model(folder, stage, profile, seed, device_request)
    text = sample_text(model, tokenizer, max_new_tokens=tokens, prompt=prompt, temperature=temperature,
                       top_k=top_k, seed=seed)
    note = "" if checkpoint.get("complete") else f" (interrupted run, step {checkpoint['step']})"
    print(f"--- {stage.name}, profile {profile}, seed {seed}{note} ---", file=sys.stderr)
    print(text)
