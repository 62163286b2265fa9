"""Text from a trained rung: `--sample` (streamed from its checkpoint or committed weights, common.weights),
and the report's samples page (every rung's sample.txt, bigram to scaled).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from common.errors import LadderError
from common.run import Stage
from common.weights import elsewhere, load_trained

if TYPE_CHECKING:
    from common.profiles import Profile

MAX_TOKENS = 100_000  # characters per sample: more is a mistake (it would take minutes on a CPU)
MAX_SAMPLES = 100


def read_prompt(prompt: str, prompt_file: str | None) -> str:
    """The prompt: --prompt's text, or the contents of --prompt-file (UTF-8, at most 100,000 characters)."""
    if prompt_file is None:
        return prompt
    path = Path(prompt_file)
    if not path.is_file():
        raise LadderError(f"--prompt-file {path} is not a file: pass the path of a text file")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_TOKENS + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise LadderError(f"cannot read --prompt-file {path} ({exc}): pass a readable UTF-8 text file") from None
    if len(text) > MAX_TOKENS:
        raise LadderError(f"--prompt-file {path} holds more than {MAX_TOKENS:,} characters: use a shorter prompt")
    return text


def check_options(tokens: int, num_samples: int, temperature: float, top_k: int | None) -> None:
    from common.generate import check_sampling
    if not 0 <= tokens <= MAX_TOKENS:
        raise LadderError(f"--tokens must be at most {MAX_TOKENS:,} (and not negative), got {tokens:,}")
    if not 1 <= num_samples <= MAX_SAMPLES:
        raise LadderError(f"--num-samples must be from 1 to {MAX_SAMPLES}, got {num_samples}")
    check_sampling(temperature, top_k)


def print_samples(folder: Path, stage: Stage, profile: str, seed: int, device_request: str | None, *,
                  seed_given: bool = False, tokens: int = 500, prompt: str = "", temperature: float = 1.0,
                  top_k: int | None = None, num_samples: int = 1, sample_seed: int = 0) -> None:
    """Stream `num_samples` samples to stdout as they are generated; the header line of each goes to stderr.

    Sample i uses the seed sample_seed + i: the same options print the same text."""
    from common.device import pick_device
    from common.generate import stream_text

    check_options(tokens, num_samples, temperature, top_k)
    trained = load_trained(folder, stage, profile, seed, seed_given)
    trained.tokenizer.encode(prompt)  # an unknown character is an error before anything is printed
    model = trained.model.to(pick_device(device_request))
    if next(model.parameters()).device.type == "cpu":
        import torch
        # one sequence through a small model: threads only wait on each other, and on a busy 2-core machine
        # two threads made 200 characters take 27 s instead of 2.6 s
        torch.set_num_threads(1)
    val = f", val loss {trained.val_loss:.3f}" if trained.val_loss is not None else ""
    if trained.stale:
        print(f"note: {trained.stale}", file=sys.stderr, flush=True)
    other = elsewhere(folder, stage.name, profile)
    if other:
        print(f"note: {stage.name} was also trained with other settings; to sample those, pass the same options: "
              f"{'; '.join(other)}", file=sys.stderr, flush=True)
    for i in range(num_samples):
        print(f"--- {stage.name}, profile {profile}: {trained.source} ({trained.kind}; training seed {trained.seed}, "
              f"step {trained.step}{val}); sample {i + 1} of {num_samples}, sample seed {sample_seed + i} ---",
              file=sys.stderr, flush=True)
        for n, piece in enumerate(stream_text(model, trained.tokenizer, tokens, prompt, temperature, top_k,
                                              seed=sample_seed + i)):
            sys.stdout.write(piece)
            if piece == "\n" or n % 64 == 0:
                sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()


def samples_page(shown: Mapping[str, Mapping[str, Any]], profile: Profile) -> str:
    """samples.md: every rung continuing the same prompt, bigram to scaled; shown[stage] is the record of the run
    whose sample.txt is shown (its lowest seed's, common.results.Results.shown), in ladder order."""
    lines = [f"# Samples — profile `{profile.name}`\n",
             "Each rung continues the same prompt for 300 characters (sample seed 0, temperature 1.0), "
             "bigram to scaled, so the improvement reads from top to bottom. These come from each run's "
             "full-precision model; more with "
             f"`python runner.py --sample --stage STAGE --profile {profile.name}`, which samples the bf16 "
             "weights when the checkpoint is not there (the same prompt and seed may then part ways after "
             "a few hundred characters).\n"]
    for stage, record in shown.items():
        text = record["_sample"]
        lines.append(f"## {stage} (val loss {record['final']['val_loss']:.3f}, training seed {record['seed']})\n\n"
                     f"```text\n{text.strip()}\n```\n")
    return "\n".join(lines)
