"""Committed results travel: a run made with precision=auto is reused whatever precision another
machine's probe picks (an explicit precision must match), and a log file gets plain lines, no
progress-bar redraws (issue 24, items 3 and 4)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import common.precision as precision_mod
from common.io import write_json
from common.run import plan_run, reused
from conftest import smoke_context

ROOT = Path(__file__).resolve().parent.parent


def _context(out: Path, corpus_path: Path, dataset, overrides=None):
    return smoke_context(out, corpus_path, dataset, overrides)


def _saved(plan) -> None:
    """A finished run's record with the plan's key, as a run writes it (the fields reuse reads)."""
    write_json(plan.record_path, {"key": plan.key, "precision": plan.precision,
                                  "final": {"val_loss": 2.5, "train_loss": 2.4, "step": 30}})


def test_an_auto_precision_run_is_reused_whichever_precision_this_machine_picks(tmp_path, corpus_path, dataset,
                                                                               monkeypatch):
    ctx = _context(tmp_path, corpus_path, dataset)
    monkeypatch.setattr(precision_mod, "_read_cache", lambda: {})  # the probe would run: we answer for it
    monkeypatch.setattr(precision_mod, "probe", lambda model, batch, timer: 2.0)  # bf16 2x faster: "bf16"
    made_on_bf16 = plan_run(ctx, "mlp", 0)
    assert made_on_bf16.precision == "bf16"
    _saved(made_on_bf16)
    monkeypatch.setattr(precision_mod, "probe", lambda model, batch, timer: 0.9)  # another CPU: "fp32"
    here = plan_run(ctx, "mlp", 0)
    assert here.precision == "fp32"
    assert here.key == made_on_bf16.key and reused(ctx, here)  # the same experiment: reused, not retrained


def test_an_explicit_precision_must_match(tmp_path, corpus_path, dataset):
    bf16 = plan_run(_context(tmp_path, corpus_path, dataset, {"precision": "bf16"}), "mlp", 0)
    fp32_ctx = _context(tmp_path, corpus_path, dataset, {"precision": "fp32"})
    assert bf16.key != plan_run(fp32_ctx, "mlp", 0).key


def test_a_log_file_gets_plain_lines_without_carriage_returns(tmp_path, corpus_path):
    log = tmp_path / "log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:  # as `make all-stages > log 2>&1`: stdout and stderr are a file, not a terminal
        code = subprocess.run([sys.executable, str(ROOT / "runner.py"), "--profile", "smoke", "--stage", "bigram",
                               "averaging", "--seeds", "0", "--data", str(corpus_path), "--out", str(tmp_path)],
                              cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=300).returncode
    raw = log.read_bytes()  # bytes: reading text would turn every carriage return into a newline
    text = raw.decode()
    assert code == 0, text
    assert b"\r" not in raw and b"\x1b[" not in raw  # no bar redraws, no cursor movement
    assert "bigram       seed 0: val" in text and "averaging    seed 0: val" in text  # one line per run


def test_the_accelerators_generator_is_saved_and_put_back_on_mps_as_on_cuda(monkeypatch):
    """Dropout on CUDA or Apple MPS draws from the device's own generator: a resumed run needs it back, or it
    replays the masks of its first steps."""
    import torch

    from common.train import TrainState, device_rng_state, restore
    saved, put_back = torch.tensor([1, 2, 3], dtype=torch.uint8), []
    monkeypatch.setattr(torch.mps, "get_rng_state", lambda *a, **k: saved)
    monkeypatch.setattr(torch.mps, "set_rng_state", lambda state, *a, **k: put_back.append(state))
    mps = torch.device("mps")
    assert device_rng_state(mps) is saved and device_rng_state(torch.device("cpu")) is None
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    restore(TrainState(device_rng=saved), optimizer, torch.Generator(), mps)
    assert put_back == [saved]
