"""A trained rung's weights: the files committed with the results, and the model they (or a checkpoint) build.

`results/<profile>/weights/<stage>.safetensors` holds one seed's weights per rung (the lowest
seed's), in bf16, with what sampling needs in its metadata (stage, profile, seed, step, validation
loss, model config, vocabulary, the run's key and code fingerprint). The report writes them from
the checkpoints (export_weights), so a fresh clone can sample every rung, and draw its attention,
without training. Loading them runs no code (safetensors). Weights or a checkpoint made by other
code than this checkout's are still loaded, with a note saying so (the text may not be what this
code would learn).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from common.errors import LadderError
from common.fingerprint import current_code
from common.run import Stage, run_dir, same_options

# weights/<stage>.safetensors travel with the results in git: a rung whose bf16 weights are larger
# (the gpu profile's 4.8M-parameter rungs, the lecture's 10.8M GPT) keeps only its local checkpoint
MAX_WEIGHTS_BYTES = 5 * 2**20


def weights_path(folder: Path, stage: str) -> Path:
    return folder / "weights" / f"{stage}.safetensors"


def weights_bytes(params: int) -> int:
    """The size of a weights file's tensors for a model of `params` parameters (bf16: 2 bytes each)."""
    return 2 * params


def write_weights_file(checkpoint: dict[str, Any], record: dict[str, Any], path: Path) -> None:
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
    """A trained rung's model, ready to sample or draw, and where it came from (for the header)."""

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
                       staleness(path, (checkpoint.get("key_parts") or {}).get("code"), None, None, stage))
    weights = weights_path(folder, stage.name)
    if weights.exists():
        tensors, meta = _read_weights(weights)
        if meta.get("stage") != stage.name or (seed_given and meta.get("seed") != seed):
            raise LadderError(f"no checkpoint for {stage.name} seed {seed} (looked for {path}), and the committed "
                              f"weights {weights} are of seed {meta.get('seed')}: drop --seeds to sample them, or "
                              f"train seed {seed} with python runner.py --stage {stage.name} --profile {profile} "
                              f"--seeds {seed}{same_options(folder, profile)}")
        return _from_weights(folder, stage, profile, weights, tensors, meta)
    committed = (path.parent / "run.json").exists()
    other = elsewhere(folder, stage.name, profile)
    raise LadderError(f"stage {stage.name!r} has no checkpoint for profile {profile!r}, seed {seed} "
                      f"(looked for {path} and {weights}): train it first with "
                      f"python runner.py --stage {stage.name} --profile {profile} --seeds {seed}"
                      + (" --force" if committed else "") + same_options(folder, profile)
                      + (" (its saved result has no checkpoint)" if committed else "")
                      + (f"; or sample what was trained with other settings, with the same options: "
                         f"{'; '.join(other)}" if other else ""))


def _from_weights(folder: Path, stage: Stage, profile: str, path: Path, tensors: dict, meta: dict) -> Trained:
    """The rung of a weights file, with why it may not be this code's (staleness)."""
    from common.data import CharTokenizer
    record = run_dir(folder, stage.name, meta["seed"]) / "run.json"
    return Trained(_build(stage, meta["model_config"], tensors, path, profile), CharTokenizer(meta["vocabulary"]),
                   str(path), "committed weights, bf16", meta["seed"], meta["step"], meta.get("val_loss"),
                   staleness(path, meta.get("code"), meta.get("key"), record, stage))


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


def staleness(path: Path, code: str | None, key: str | None, record: Path | None, stage: Stage) -> str:
    """Why a checkpoint or weights file of `stage` may not be what this checkout would train, or "" when it is."""
    from common.io import read_json
    current = current_code(stage.name)
    if code is not None and code != current:
        return (f"{path} was trained by other code (fingerprint {code}, this checkout's is {current}): "
                f"its text may not be what this code learns; retrain the stage with --force to refresh it")
    try:
        saved = read_json(record) if key is not None and record is not None and record.exists() else {}
    except (OSError, ValueError):
        saved = {}
    if isinstance(saved, dict) and saved.get("key") not in (None, key):
        return (f"{path} is from another run than {record} (it was retrained since, and its checkpoint is not "
                f"here): retrain the stage with --force to refresh it")
    return ""


def load_committed(folder: Path, stage, profile: str):
    """The model the report draws: the committed weights first (what a clean clone has, so its maps redraw the
    same there), else the lowest seed's finished checkpoint; None when neither is here."""
    path = weights_path(folder, stage.name)
    if path.exists():
        return _from_weights(folder, stage, profile, path, *_read_weights(path))
    seeds = sorted(int(p.parent.name[4:]) for p in folder.glob(f"runs/{stage.name}/seed*/checkpoint.pt")
                   if p.parent.name[4:].isdigit() and (p.parent / "run.json").exists())
    return load_trained(folder, stage, profile, seeds[0], True) if seeds else None


def export_weights(folder: Path, shown: Mapping[str, Mapping[str, Any]]) -> None:
    """<folder>/weights/<stage>.safetensors from the checkpoint of the run shown[stage] (each rung's lowest seed,
    common.results.Results.shown), where it is newer than the file.

    A clone without checkpoints keeps the committed weights as they are, and says which are missing or
    from another run than the one the table reports."""
    from common.checkpoint import load_checkpoint
    behind, large = [], []
    for stage, record in shown.items():
        checkpoint_path, target = record["_dir"] / "checkpoint.pt", weights_path(folder, stage)
        size = weights_bytes(record["params"])
        if size > MAX_WEIGHTS_BYTES:  # decided before reading a checkpoint of that size
            large.append(f"{stage} ({size / 2**20:.1f} MiB)")
            continue
        if weights_key(target) == record["key"]:
            continue
        if not checkpoint_path.exists():
            behind.append(f"{stage} (seed {record['seed']})")
            continue
        try:
            checkpoint = load_checkpoint(checkpoint_path, stage=stage)
        except LadderError as exc:
            print(f"not exporting the weights of {stage}: {exc}", file=sys.stderr)
            continue
        if checkpoint.get("key") == record["key"] and checkpoint.get("complete"):
            write_weights_file(checkpoint, record, target)
    if large:
        print(f"no weights file for {', '.join(large)}: over the {MAX_WEIGHTS_BYTES // 2**20} MiB a results folder "
              f"keeps in git; sampling reads their checkpoints in {folder / 'runs'}", file=sys.stderr)
    if behind:
        print(f"no fresh weights in {folder / 'weights'} for {', '.join(behind)}: their checkpoints are not here "
              f"(retrain those runs with --force to write them)", file=sys.stderr)
