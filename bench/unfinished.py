"""What the runs that a time limit cut short had reached: their checkpoints' curves, as one JSON file.

A run stopped by SIGTERM saves a checkpoint (weights, step, the loss curve with its seconds) but no run.json,
and the results archive leaves checkpoints out (they are large). This writes the small part worth keeping,
so a cut-short GPU call still says how far each run got, how fast, and at what loss:

    python bench/unfinished.py results/gpu results/lecture --out gpu-out/unfinished-runs.json

Prints one line per unfinished run (or that there is none); the JSON holds each run's stage, seed, step,
max_iters, precision, device and whole curve (step, train_loss, val_loss, seconds).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.checkpoint import load_checkpoint  # noqa: E402
from common.errors import LadderError  # noqa: E402


def unfinished_runs(folders: list[Path]) -> list[dict]:
    """Every checkpoint under folders/runs/<stage>/<seed>/ without a run.json beside it, summarised."""
    runs = []
    for folder in folders:
        for path in sorted(Path(folder).glob("runs/*/*/checkpoint.pt")):
            if path.with_name("run.json").exists():
                continue
            try:
                checkpoint = load_checkpoint(path)
            except LadderError as exc:
                runs.append({"checkpoint": str(path), "error": str(exc)})
                continue
            train_config = checkpoint.get("train_config") or {}
            runs.append({"checkpoint": str(path), "stage": checkpoint["stage"], "seed": checkpoint.get("seed"),
                         "step": checkpoint["step"], "max_iters": train_config.get("max_iters"),
                         "complete": bool(checkpoint.get("complete")),  # trained to the end, its record not written
                         "precision": train_config.get("precision"), "device_type": checkpoint.get("device_type"),
                         "curve": checkpoint["curve"]})
    return runs


def describe(run: dict) -> str:
    if "error" in run:
        return f"{run['checkpoint']}: {run['error']}"
    last = run["curve"][-1] if run["curve"] else {}
    reached = (f", last evaluation at step {last['step']}: val {last['val_loss']:.4f} after {last['seconds']:.1f} s"
               if last else "")
    how = "finished, its record not written" if run["complete"] else "stopped"
    return f"{run['stage']} seed {run['seed']}: {how} at step {run['step']} of {run['max_iters']}{reached}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path, help="results folders (each with a runs/ folder)")
    p.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    args = p.parse_args(argv)
    runs = unfinished_runs(args.folders)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")
    for run in runs:
        print(describe(run))
    print(f"unfinished runs: {len(runs) or 'none'} ({args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
