"""Text from a trained rung: from a local checkpoint, or from the weights committed with the results.

`results/<profile>/weights/<stage>.safetensors` holds one seed's weights per rung (the lowest
seed's), in bf16, with what sampling needs in its metadata (stage, profile, seed, step, validation
loss, model config, vocabulary, the run's key and code fingerprint). The report writes them from
the checkpoints, so a fresh clone can sample every rung without training. Loading them runs no code
(safetensors). Weights or a checkpoint made by other code than this checkout's are still sampled,
with a note saying so (the text may not be what this code would learn).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import LadderError
from common.run import Stage, run_dir

MAX_TOKENS = 100_000  # characters per sample: more is a mistake (it would take minutes on a CPU)
MAX_SAMPLES = 100
# weights/<stage>.safetensors travel with the results in git: a rung whose bf16 weights are larger
# (the gpu profile's 4.8M-parameter rungs, the lecture's 10.8M GPT) keeps only its local checkpoint
MAX_WEIGHTS_BYTES = 5 * 2**20


def weights_path(folder: Path, stage: str) -> Path:
    return folder / "weights" / f"{stage}.safetensors"


def weights_bytes(params: int) -> int:
    """The size of a weights file's tensors for a model of `params` parameters (bf16: 2 bytes each)."""
    return 2 * params


def export_weights(checkpoint: dict[str, Any], record: dict[str, Any], path: Path) -> None:
    """Write a run's weights (bf16) with the metadata sampling needs, atomically."""
    import torch
    from safetensors.torch import save_file

    from common.io import atomic_path
    tensors = {name: t.to(torch.bfloat16).contiguous() for name, t in checkpoint["model"].items()}
    meta = {"stage": record["stage"], "profile": record["profile"], "seed": record["seed"], "key": record["key"],
            "code": record.get("code"),
            "step": checkpoint["step"], "val_loss": record["final"]["val_loss"],
            "model_config": checkpoint["model_config"], "vocabulary": checkpoint["vocabulary"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"gpt_ladder": json.dumps(meta)})


def weights_key(path: Path) -> str | None:
    """The run key recorded in a weights file (None if it is missing or unreadable)."""
    try:
        return _read_weights(path)[1].get("key")
    except LadderError:
        return None


def _read_weights(path: Path):
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["gpt_ladder"])
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as exc:  # a damaged or foreign file
        raise LadderError(f"weights file {path} cannot be read ({type(exc).__name__}): delete it, or retrain the "
                          f"stage with --force") from None
    return tensors, meta


@dataclass
class Trained:
    """A model ready to sample, and where it came from (for the header)."""

    model: Any
    tokenizer: Any
    source: str  # the file
    kind: str  # "checkpoint", "interrupted checkpoint" or "committed weights, bf16"
    seed: int
    step: int
    val_loss: float | None
    stale: str = ""  # why the weights may not be this code's, or ""


def _build(stage: Stage, model_config: dict, state: dict, path: Path, profile: str):
    import torch
    try:
        model = stage.Model(stage.Config(**model_config))
        model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    except (TypeError, ValueError, RuntimeError, LadderError):
        raise LadderError(f"{path} does not fit the {stage.name} model of this code: retrain it with "
                          f"python runner.py --stage {stage.name} --profile {profile} --force") from None
    return model


def load_trained(folder: Path, stage: Stage, profile: str, seed: int, seed_given: bool) -> Trained:
    """The run's checkpoint if there is one, else the committed weights (when they are of that seed)."""
    from common.checkpoint import load_checkpoint
    from common.data import CharTokenizer

    path = run_dir(folder, stage.name, seed) / "checkpoint.pt"
    if path.exists():
        checkpoint = load_checkpoint(path, stage=stage.name, profile=profile)
        model = _build(stage, checkpoint["model_config"], checkpoint["model"], path, profile)
        curve = checkpoint.get("curve") or [{}]
        return Trained(model, CharTokenizer(checkpoint["vocabulary"]), str(path),
                       "checkpoint" if checkpoint.get("complete") else "interrupted checkpoint", seed,
                       checkpoint["step"], curve[-1].get("val_loss"),
                       staleness(path, (checkpoint.get("key_parts") or {}).get("code"), None, None))
    weights = weights_path(folder, stage.name)
    if weights.exists():
        tensors, meta = _read_weights(weights)
        if meta.get("stage") != stage.name or (seed_given and meta.get("seed") != seed):
            raise LadderError(f"no checkpoint for {stage.name} seed {seed} (looked for {path}), and the committed "
                              f"weights {weights} are of seed {meta.get('seed')}: drop --seeds to sample them, or "
                              f"train seed {seed} with python runner.py --stage {stage.name} --profile {profile} "
                              f"--seeds {seed}")
        model = _build(stage, meta["model_config"], tensors, weights, profile)
        record = run_dir(folder, stage.name, meta["seed"]) / "run.json"
        return Trained(model, CharTokenizer(meta["vocabulary"]), str(weights), "committed weights, bf16",
                       meta["seed"], meta["step"], meta.get("val_loss"),
                       staleness(weights, meta.get("code"), meta.get("key"), record))
    committed = (path.parent / "run.json").exists()
    other = elsewhere(folder, stage.name, profile)
    raise LadderError(f"stage {stage.name!r} has no checkpoint for profile {profile!r}, seed {seed} "
                      f"(looked for {path} and {weights}): train it first with "
                      f"python runner.py --stage {stage.name} --profile {profile} --seeds {seed}"
                      + (" --force (its saved result has no checkpoint)" if committed else "")
                      + (f"; or sample what was trained with other settings, with the same options: "
                         f"{'; '.join(other)}" if other else ""))


def elsewhere(folder: Path, stage: str, profile: str) -> list[str]:
    """The profile's other results folders (other --set/--max-iters/--data) holding something to sample of `stage`,
    each with the options that select it: `results/smoke-1a2b3c4d (--set max_iters=60)`."""
    from common.io import read_json
    found = []
    for other in sorted(folder.parent.glob(f"{profile}*")):
        if other == folder or other.name != profile and not other.name.startswith(f"{profile}-"):
            continue
        sources = [*other.glob(f"runs/{stage}/seed*/checkpoint.pt"), weights_path(other, stage)]
        if not any(path.exists() for path in sources):
            continue
        try:
            overrides = next((read_json(r).get("overrides") for r in sorted(other.glob(f"runs/{stage}/seed*/run.json"))),
                             None)
        except (OSError, ValueError, AttributeError):
            overrides = None
        options = (" ".join(f"--set {k}={v}" for k, v in sorted(overrides.items())) if overrides
                   else "without --set or --max-iters" if overrides == {} else "its options")
        corpus = other.name.partition("-data-")[2]  # another corpus's folder (common.run.results_folder)
        if corpus or "-data-" in folder.name:
            options += (f", --data the corpus whose SHA-256 begins {corpus}" if corpus
                        else ", on Tiny Shakespeare: without --data")
        found.append(f"{other} ({options})")
    return found


def staleness(path: Path, code: str | None, key: str | None, record: Path | None) -> str:
    """Why a checkpoint or weights file may not be what this checkout would train, or "" when it is."""
    from common.io import read_json
    from common.run import code_fingerprint
    if code is not None and code != code_fingerprint():
        return (f"{path} was trained by other code (fingerprint {code}, this checkout's is {code_fingerprint()}): "
                f"its text may not be what this code learns; retrain the stage with --force to refresh it")
    try:
        saved = read_json(record) if key is not None and record is not None and record.exists() else {}
    except (OSError, ValueError):
        saved = {}
    if isinstance(saved, dict) and saved.get("key") not in (None, key):
        return (f"{path} is from another run than {record} (it was retrained since, and its checkpoint is not "
                f"here): retrain the stage with --force to refresh it")
    return ""


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
