"""One run: a (stage, seed) trained under a profile, from its settings to its `run.json`.

The data flow, in the order the functions below are called by `train_run`:

    plan_run      settings -> model and training configs, precision, reuse key, folder
    reused        a saved run.json with the same key: nothing to do
    start_model   a fresh model, or the one in the checkpoint when resuming
    fit           train, writing a checkpoint at every evaluation; stop or NaN keep the last good one
    write_record  curve.csv, sample.txt, then run.json (last: its presence marks the run complete)

Everything a run needs from outside (dataset, device, stages, options) arrives in a `RunContext`;
this module never imports a stage or the command line.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from common.distributed import SINGLE, World
from common.errors import LadderError
from common.fingerprint import current_code
from common.profiles import Profile, make_configs, settings_for

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "results"  # where results go without --out
SAMPLE_PROMPT = "JULIET:\n"  # every rung's sample.txt continues this prompt (sample seed 0), to compare them


@dataclass(frozen=True)
class Stage:
    """What the core needs of a stage, handed in by the caller (classes pickle by name, for workers)."""

    name: str
    Model: type
    Config: type
    adds: str
    lecture_val_loss: float | None

    @classmethod
    def from_module(cls, name: str, module) -> "Stage":
        return cls(name, module.Model, module.Config, module.ADDS, module.LECTURE_VAL_LOSS)


def stage_fingerprints(stages: Mapping[str, Stage]) -> dict[str, str]:
    """Each stage's code fingerprint (common.fingerprint.current_code: of its file stages/<name>.py), by name."""
    return {name: current_code(name) for name in stages}


@dataclass(frozen=True)
class RunOptions:
    """How to train, as the command line says it: plain values, so worker processes can receive them."""

    profile: str
    overrides: Mapping[str, Any]
    out: str
    data: str | None = None
    device: str | None = None
    force: bool = False
    resume: bool = False
    progress: bool = True
    folder: str | None = None  # the results folder itself, when not <out>/<profile>[-<overrides>] (a study's point)
    corpus: str | None = None  # common.corpus.corpus_id(data): None for Tiny Shakespeare, else its own folder
    compile: bool = False  # train torch.compile(model): the same run (not part of its key), faster steps on a GPU


def results_folder(out: str | Path, profile: str, overrides: Mapping[str, Any], corpus: str | None = None) -> Path:
    """results/<profile>, then -<hash of the overrides> when any --set was given, then -data-<corpus id> for a
    corpus other than Tiny Shakespeare (common.corpus.corpus_id): a folder holds one experiment."""
    suffix = "" if not overrides else "-" + hashlib.sha256(
        json.dumps(dict(overrides), sort_keys=True).encode()).hexdigest()[:8]
    data = f"-data-{corpus}" if corpus else ""
    return Path(out) / f"{profile}{suffix}{data}"


def same_options(folder: Path, profile: str) -> str:
    """What advice to train must add to name `folder` again: '' for the default results/<profile>, else a word
    to repeat the options that chose it (the advice's command would otherwise train into results/)."""
    return ("" if Path(folder).resolve() == DEFAULT_OUT / profile
            else " and this command's --out, --set, --max-iters and --data")


def run_dir(folder: Path, stage: str, seed: int) -> Path:
    return folder / "runs" / stage / f"seed{seed}"


@dataclass(frozen=True)
class RunContext:
    """Everything the runs of one command share: options, profile, stages, dataset (on the CPU), device."""

    options: RunOptions
    profile: Profile
    stages: Mapping[str, Stage]  # in ladder order
    dataset: Any  # common.data.Dataset
    device: Any  # torch.device
    fingerprints: Mapping[str, str]  # each stage's code fingerprint (stage_fingerprints)
    world: World = SINGLE  # the ranks of a torchrun launch; only rank 0 writes files

    @property
    def folder(self) -> Path:
        if self.options.folder:
            return Path(self.options.folder)
        return results_folder(self.options.out, self.profile.name, self.options.overrides, self.options.corpus)


def open_context(options: RunOptions, stages: Mapping[str, Stage], fingerprints: Mapping[str, str]) -> RunContext:
    """A RunContext from plain options: loads the corpus and picks the device."""
    from common.data import load_dataset
    from common.device import pick_device
    from common.profiles import get_profile
    return RunContext(options, get_profile(options.profile), stages, load_dataset(options.data),
                      pick_device(options.device), fingerprints)


def stage_configs(profile: Profile, stage: Stage, overrides: Mapping[str, Any], dataset):
    """(settings, model config, TrainConfig) of a stage under a profile, checked against the corpus."""
    from common.data import check_block_size, check_train_chars
    settings = settings_for(profile, stage.name, overrides)
    model_config, train_config = make_configs(stage.Config, settings, dataset.tokenizer.vocab_size)
    check_block_size(dataset, model_config.block_size)
    check_train_chars(dataset, train_config.train_chars, model_config.block_size)
    return settings, model_config, train_config


def check_settings(stages: Mapping[str, Stage], stage: str, settings: Mapping[str, Any], vocab_size: int) -> None:
    """A run's settings checked beyond its own stage's config: each setting that config does not have, by the
    config that introduces it (the one among the stages' configs with the fewest base classes), so --set
    dropout=1.5 is refused on the residual rung as on the dropout rung (ranges, finiteness; types are
    parse_overrides'), while a rule of a later rung about settings this rung has too (rope's even head size)
    stays that rung's."""
    from common.config import field_names
    own = set(field_names(stages[stage].Config))
    classes = list(dict.fromkeys(s.Config for s in stages.values()))
    checks = {}
    for name in set(settings) - own:
        having = [cls for cls in classes if name in field_names(cls)]
        if having:
            fewest = min(len(cls.__mro__) for cls in having)
            checks.update(dict.fromkeys(cls for cls in having if len(cls.__mro__) == fewest))
    for config_class in checks:
        make_configs(config_class, settings, vocab_size)


@dataclass(frozen=True)
class RunPlan:
    """One (stage, seed): its configs, the precision it trains in, its reuse key and its folder."""

    stage: Stage
    seed: int
    settings: Mapping[str, Any]
    model_config: Any
    train_config: Any
    precision: str
    key: str
    folder: Path
    key_parts: Mapping[str, Any]  # what the key covers, kept in checkpoints to say why one does not match

    @property
    def record_path(self) -> Path:
        return self.folder / "run.json"

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / "checkpoint.pt"


def plan_run(ctx: RunContext, name: str, seed: int) -> RunPlan:
    """The plan of a run; its key covers everything that decides its numbers."""
    import torch

    from common.precision import resolve_precision
    stage = ctx.stages[name]
    settings, model_config, train_config = stage_configs(ctx.profile, stage, ctx.options.overrides, ctx.dataset)
    if train_config.precision == "auto":
        probe_model = None
        if ctx.device.type == "cpu":  # only the CPU is probed (common/precision.py)
            with torch.random.fork_rng(devices=[]):  # building a model to measure must not move the run's seeds
                probe_model = stage.Model(model_config)
        precision = resolve_precision("auto", ctx.device, probe_model, train_config.batch_size)
        precision = ctx.world.from_rank0(precision)  # every rank of a DDP run trains alike
        train_config = dataclasses.replace(train_config, precision=precision)
    key, parts = run_key(ctx, name, seed, settings)
    return RunPlan(stage, seed, settings, model_config, train_config, train_config.precision, key,
                   run_dir(ctx.folder, name, seed), parts)


def run_key(ctx: RunContext, name: str, seed: int, settings: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(key, what it covers) of a run: stage, seed, settings, code, the precision asked for, the data."""
    # The key holds the precision asked for: a run made with "auto" is a run of the same experiment whichever
    # precision a machine's probe chose (run.json keeps the one it used); an explicit precision must match.
    asked = settings.get("precision", "auto")
    code = ctx.fingerprints[name]
    key = hashlib.sha256(json.dumps({"stage": name, "seed": seed, "settings": settings, "code": code,
                                     "precision": asked, "vocabulary": ctx.dataset.tokenizer.chars,
                                     "n_train": len(ctx.dataset.train)},
                                    sort_keys=True).encode()).hexdigest()[:16]
    data = hashlib.sha256(json.dumps([ctx.dataset.tokenizer.chars, len(ctx.dataset.train)]).encode()).hexdigest()[:16]
    return key, {"settings": dict(settings), "seed": seed, "code": code, "precision": asked, "data": data}


def reused(ctx: RunContext, plan: RunPlan) -> bool:
    """True (and says so) when a finished run with the same key is saved and --force was not given; a finished
    run with another key is never replaced without --force (replacing_message says why, and the ways on)."""
    old = saved_record(plan.record_path) if not ctx.options.force else None
    if old is None:
        return False
    if old.get("key") == plan.key:
        print(f"{plan.stage.name:<12} seed {plan.seed}: reusing saved result (val {old['final']['val_loss']:.3f}; "
              f"--force retrains)")
        return True
    if finished(old):
        raise LadderError(replacing_message(plan.record_path, old, plan.key_parts))
    return False  # not a finished run's record (damaged): nothing finished is replaced


def saved_record(path: Path) -> dict[str, Any] | None:
    """The record saved at path (a run.json), or None: none there, or not readable as a JSON object."""
    from common.io import read_json
    if not path.exists():
        return None
    try:
        old = read_json(path)
    except (OSError, ValueError):
        return None
    return old if isinstance(old, dict) else None


def finished(record: Mapping[str, Any] | None) -> bool:
    """Whether a saved record is a finished run's, as the report reads them."""
    from common.results import is_run_record
    return record is not None and is_run_record(record)


def record_key_parts(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """What a saved run's key covered: kept in run.json since issue 24, rebuilt (but for the data) before."""
    if isinstance(record.get("key_parts"), Mapping):
        return record["key_parts"]
    settings = record.get("settings") if isinstance(record.get("settings"), Mapping) else {}
    return {"settings": settings, "seed": record.get("seed"), "code": record.get("code"),
            "precision": settings.get("precision", "auto")}


def replacing_message(path: Path, record: Mapping[str, Any], parts: Mapping[str, Any], more: int = 0) -> str:
    """Why a finished run is not replaced, and the two ways on."""
    others = f" ({more} more finished run{'s differ' if more > 1 else ' differs'} too)" if more else ""
    return (f"{path.parent} holds a finished run of {record['stage']}, seed {record['seed']}, made with "
            f"{mismatch(record_key_parts(record), parts)}{others}: replace it with --force, or train into "
            f"another folder with --out")


def check_replacing(runs: list[tuple[RunContext, str, int, Mapping[str, Any]]]) -> None:
    """Before any training: refuse when a run would replace a finished run of another experiment (no --force).

    runs: (its context, stage, seed, settings) of every run of the command."""
    clashes = []
    for run_ctx, name, seed, settings in runs:
        path = run_dir(run_ctx.folder, name, seed) / "run.json"
        old = None if run_ctx.options.force else saved_record(path)
        if finished(old):
            key, parts = run_key(run_ctx, name, seed, settings)
            if old.get("key") != key:
                clashes.append((path, old, parts))
    if clashes:
        path, old, parts = clashes[0]
        raise LadderError(replacing_message(path, old, parts, len(clashes) - 1))


def start_model(ctx: RunContext, plan: RunPlan):
    """(model on the device, TrainState or None, plan): a fresh model, or the checkpoint's when resuming it.

    An interrupted run's checkpoint is never replaced silently: without --resume, or when it does not
    match this run, the run is refused with what differs, and --force is the way to start over. With
    --force and --resume together, an interrupted run of this very experiment (an interrupted --force
    retrain) is continued; anything else starts over. A resumed run asked for precision "auto" goes on in the
    precision it started in (the returned plan's), whatever this machine's probe chooses now.
    """
    from common.checkpoint import load_checkpoint, train_state_from
    from common.device import set_seed
    name, seed, path = plan.stage.name, plan.seed, plan.checkpoint_path
    set_seed(seed)
    model = plan.stage.Model(plan.model_config).to(ctx.device)
    if not path.exists() or ctx.options.force and not ctx.options.resume:
        return model, None, plan
    strict = ctx.options.resume and not ctx.options.force  # another stage, profile or vocabulary is an error
    try:
        checkpoint = load_checkpoint(path, **(dict(stage=name, profile=ctx.profile.name,
                                                   vocabulary=ctx.dataset.tokenizer.chars) if strict else {}))
    except LadderError:
        if strict:
            raise
        return model, None, plan  # damaged: nothing in it can be continued
    if ctx.options.force and (checkpoint.get("key") != plan.key
                              or checkpoint.get("device_type", ctx.device.type) != ctx.device.type
                              or checkpoint.get("complete") and plan.record_path.exists()):
        return model, None, plan  # --force --resume continues only a stopped run of this very experiment, here
    if checkpoint.get("complete") and not (ctx.options.resume and checkpoint.get("key") == plan.key):
        return model, None, plan  # a finished run's weights: retraining replaces them with its record
    if checkpoint.get("key") != plan.key:
        raise LadderError(f"checkpoint {path} holds an interrupted run (step {checkpoint['step']}) made with "
                          f"{mismatch(checkpoint.get('key_parts'), plan.key_parts)}: continue it with those, or "
                          f"start over with --force (which replaces it)")
    if not ctx.options.resume:
        raise LadderError(f"an interrupted run of {name}, seed {seed} (step {checkpoint['step']} of "
                          f"{plan.train_config.max_iters}) is saved in {path}: continue it with --resume, or start "
                          f"over with --force")
    saved_on = checkpoint.get("device_type", ctx.device.type)
    if saved_on != ctx.device.type:
        raise LadderError(f"checkpoint {path} was trained on {saved_on}, this run uses {ctx.device.type}: resume "
                          f"it with --device {saved_on}, or retrain with --force")
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError:
        raise LadderError(f"checkpoint {path} does not fit the {name} model: retrain with --force") from None
    state = train_state_from(checkpoint)
    started_in = (checkpoint.get("train_config") or {}).get("precision", plan.precision)
    if started_in != plan.precision:  # the same key: "auto" both times, resolved otherwise now (threads, torch)
        plan = dataclasses.replace(plan, precision=started_in,
                                   train_config=dataclasses.replace(plan.train_config, precision=started_in))
    print(f"{name:<12} seed {seed}: resuming from step {state.step} of {plan.train_config.max_iters}")
    return model, state, plan


def mismatch(saved: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> str:
    """What differs between a checkpoint's key parts and this run's, in words."""
    if not isinstance(saved, Mapping):
        return "other settings, data or code"
    said = []
    old = saved.get("settings") if isinstance(saved.get("settings"), Mapping) else {}
    settings = [f"{k} {old.get(k)!r} (now {v!r})" for k, v in wanted["settings"].items() if old.get(k) != v]
    if settings:
        said.append("other settings: " + ", ".join(settings))
    if saved.get("seed") != wanted["seed"]:
        said.append(f"seed {saved.get('seed')} (now {wanted['seed']})")
    if "data" in saved and saved.get("data") != wanted["data"]:
        said.append("other data (the corpus has changed; pass the original with --data)")
    if saved.get("code") != wanted["code"]:
        said.append("other code (this GPT Ladder has changed since)")
    if saved.get("precision") != wanted["precision"]:
        said.append(f"precision {saved.get('precision')} (now {wanted['precision']})")
    return "; ".join(said) or "other settings, data or code"


def fit(ctx: RunContext, plan: RunPlan, model, state, dataset, stop: Callable[[], bool], progress=None):
    """Train, saving a checkpoint at every evaluation; returns the TrainResult, or None if stopped.

    progress, if given, is a queue that receives (stage, seed, step, val_loss) after each evaluation.
    """
    import torch

    from common.checkpoint import save_checkpoint
    from common.train import train
    name, seed, path, cfg = plan.stage.name, plan.seed, plan.checkpoint_path, plan.train_config
    saved = {"step": None}

    def save(st, m) -> None:
        if not ctx.world.is_main:
            return
        save_checkpoint(path, model=m, state=st, stage=name, profile=ctx.profile.name, seed=seed,
                        train_config=cfg, vocabulary=ctx.dataset.tokenizer.chars,
                        complete=st.step >= cfg.max_iters, extra={"key": plan.key, "key_parts": plan.key_parts,
                                                          "device_type": ctx.device.type})
        saved["step"] = st.step

    def on_eval(st, m, opt) -> None:
        save(st, m)
        if progress is not None:
            progress.put((name, seed, st.step, st.curve[-1]["val_loss"], str(ctx.folder)))

    if ctx.options.compile:  # compiled graphs of the same parameters; the compiler's cache is kept on the forward's
        torch._dynamo.reset()  # code, which every model shares: emptied per run, or after a few models it stops compiling
    stepped = torch.compile(model) if ctx.options.compile else model
    result = train(stepped, dataset, cfg, seed=seed, state=state, name=f"{name} s{seed}",
                   progress=ctx.options.progress and ctx.world.is_main, on_eval=on_eval, should_stop=stop,
                   world=ctx.world)
    if result.diverged and ctx.world.is_main:
        kept = f"; its checkpoint from step {saved['step']} is kept" if saved["step"] is not None else ""
        print(f"{name} seed {seed}: diverged, the loss is no longer finite at step {result.state.step}: recorded "
              f"as a diverged run{kept} (the learning rate, {cfg.learning_rate}, is probably too high for this "
              f"model)", file=sys.stderr, flush=True)
    if not result.stopped:
        return dataclasses.replace(result, model=model)  # the module itself, not its compiled wrapper
    if not ctx.world.is_main:
        return None
    if all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        save(result.state, model)
    else:  # diverged since the last evaluation: keep the last good checkpoint
        print(f"{name} seed {seed}: the weights are no longer finite at step {result.state.step}; "
              f"keeping the checkpoint from step {saved['step']}", file=sys.stderr, flush=True)
    print(f"{name} seed {seed}: stopped at step {saved['step']} of {cfg.max_iters}; "
          f"checkpoint saved to {path}", file=sys.stderr, flush=True)
    return None


def write_record(ctx: RunContext, plan: RunPlan, result, peak_mb: float) -> None:
    """curve.csv, sample.txt, then run.json; prints the run's one-line summary."""
    import torch

    from common.device import device_name
    from common.generate import sample_text
    from common.io import write_json, write_text
    name, seed, cfg, mcfg = plan.stage.name, plan.seed, plan.train_config, plan.model_config
    model, state = result.model, result.state
    params = sum(p.numel() for p in model.parameters())
    tokenizer = ctx.dataset.tokenizer
    prompt = SAMPLE_PROMPT if all(ch in tokenizer.stoi for ch in SAMPLE_PROMPT) else ""
    sample = (f"(no sample: the run diverged at step {state.step})\n" if result.diverged
              else sample_text(model, tokenizer, max_new_tokens=300, prompt=prompt, seed=0))
    final, best = result.final, result.best_val
    tokens_per_second = result.tokens_per_second or (  # a run finished before this session: its average
        state.step * cfg.batch_size * mcfg.block_size / max(state.elapsed, 1e-9))
    record = {
        "stage": name, "adds": plan.stage.adds, "profile": ctx.profile.name, "seed": seed, "key": plan.key,
        "settings": plan.settings, "overrides": dict(ctx.options.overrides),
        "model_config": dataclasses.asdict(mcfg), "train_config": dataclasses.asdict(cfg),
        "device": str(ctx.device), "device_name": device_name(ctx.device), "precision": plan.precision,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "platform": platform.platform()},
        "params": params, "world_size": ctx.world.world_size, "compiled": ctx.options.compile,
        "train_seconds": round(state.elapsed, 2),
        "wall_seconds_this_session": round(result.wall_seconds, 2),
        "tokens_per_second": round(tokens_per_second, 1), "peak_memory_mb": round(peak_mb, 1),
        "final": final, "best": best, "diverged": result.diverged, "code": plan.key_parts["code"],
        "key_parts": plan.key_parts,
        "train_chars_used": cfg.train_chars or len(ctx.dataset.train),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_text(plan.folder / "curve.csv", "step,train_loss,val_loss,seconds\n" + "".join(
        f"{r['step']},{r['train_loss']:.5f},{r['val_loss']:.5f},{r['seconds']}\n" for r in state.curve))
    write_text(plan.folder / "sample.txt", sample)
    write_json(plan.record_path, record)  # last: its presence marks the run complete
    gap = final["val_loss"] - final["train_loss"]
    print(f"{name:<12} seed {seed}: val {final['val_loss']:.3f} (best {best['val_loss']:.3f} at step "
          f"{best['step']}), train {final['train_loss']:.3f}, gap {gap:+.3f}, {params:,} params, "
          f"{state.elapsed:.1f} s, {tokens_per_second:,.0f} tok/s", flush=True)


def train_run(ctx: RunContext, name: str, seed: int, stop: Callable[[], bool], progress=None) -> bool:
    """Train one (stage, seed) unless a matching result is saved; False if stopped."""
    from common.memory import MemoryMeter
    plan = plan_run(ctx, name, seed)
    if reused(ctx, plan):
        return True
    model, state, plan = start_model(ctx, plan)
    if ctx.options.force and ctx.world.is_main:  # the replaced result goes now, not beside a new run's checkpoint
        plan.record_path.unlink(missing_ok=True)
    ctx.world.barrier()  # every rank has read the checkpoint before rank 0 writes the next one
    dataset = ctx.dataset.to(ctx.device)
    memory = MemoryMeter(ctx.device)
    result = fit(ctx, plan, model, state, dataset, stop, progress)
    if result is None:
        return False
    peak_mb, _ = memory.read()  # this run's peak, not the worker process's earlier runs
    if ctx.world.is_main:
        write_record(ctx, plan, result, peak_mb)
    ctx.world.barrier()  # the record exists before any rank goes on to the next run
    return True
