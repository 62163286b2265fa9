"""The runner on a GPU (CUDA) or Apple MPS: the paths the CPU never takes. Skipped where neither is present;
bench/gpu_session.sh runs this file first on a GPU machine, so a broken device path costs seconds, not the
call: a run trains, checkpoints, stops, resumes to the numbers of a run never stopped (the dropout masks come
from the device's own generator), and samples; precision=auto takes bf16 where the GPU computes it natively.
"""
from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch

from common.run import RunContext, run_dir, train_run
from conftest import smoke_context
from stages import STAGES
from test_interruption import _StopAfter

MPS = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
DEVICE = "cuda" if torch.cuda.is_available() else "mps" if MPS else None
pytestmark = pytest.mark.skipif(DEVICE is None, reason="needs CUDA or Apple MPS")
SETTINGS = {"eval_interval": 5, "max_iters": 30}


def _context(out, corpus_path, dataset, **options) -> RunContext:
    return smoke_context(out, corpus_path, dataset, SETTINGS, device=DEVICE, **options)


def _record(ctx: RunContext, stage: str) -> dict:
    return json.loads((run_dir(ctx.folder, stage, 0) / "run.json").read_text())


def test_a_dropout_run_stopped_and_resumed_ends_as_one_never_stopped(tmp_path, corpus_path, dataset):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        whole = _context(tmp_path / "whole", corpus_path, dataset)
        assert train_run(whole, "dropout", 0, lambda: False)
        cut = _context(tmp_path / "cut", corpus_path, dataset)
        assert train_run(cut, "dropout", 0, _StopAfter(12)) is False
        assert train_run(_context(tmp_path / "cut", corpus_path, dataset, resume=True), "dropout", 0, lambda: False)
    finished, resumed = _record(whole, "dropout"), _record(cut, "dropout")
    assert finished["device"].startswith(DEVICE) and finished["device_name"]
    assert resumed["final"]["val_loss"] == pytest.approx(finished["final"]["val_loss"], abs=1e-4)
    assert (run_dir(cut.folder, "dropout", 0) / "sample.txt").read_text().strip()


def test_auto_precision_on_the_device(tmp_path, corpus_path, dataset):
    ctx = _context(tmp_path, corpus_path, dataset)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert train_run(ctx, "residual", 0, lambda: False)
    native = DEVICE == "cuda" and torch.cuda.get_device_capability()[0] >= 8
    assert _record(ctx, "residual")["precision"] == ("bf16" if native else "fp32")


def test_the_fused_attention_kernel_gives_the_explicit_forms_loss_on_the_device(tmp_path):
    from conftest import random_tokens, tiny_configs
    config, _ = tiny_configs("qk_norm")
    torch.manual_seed(0)
    explicit = STAGES["qk_norm"].Model(config).to(DEVICE).eval()
    fused_config, _ = tiny_configs("qk_norm", fused_attention=True)
    fused = STAGES["qk_norm"].Model(fused_config).to(DEVICE).eval()
    fused.load_state_dict(explicit.state_dict())
    idx = random_tokens(4, config.block_size).to(DEVICE)
    with torch.no_grad():
        _, a = explicit(idx, idx)
        _, b = fused(idx, idx)
    assert a.item() == pytest.approx(b.item(), abs=1e-4)
