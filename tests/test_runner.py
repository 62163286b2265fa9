"""runner.py end to end, as a user runs it: real subprocesses on the smoke profile."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from stages import STAGE_NAMES
from test_bad_input import run_main

ROOT = Path(__file__).resolve().parent.parent


def runner(*args, out=None, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "runner.py"), *args, "--no-progress"]
    if out is not None:
        cmd += ["--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, corpus_path):
    out = tmp_path_factory.mktemp("results")
    result = runner("--profile", "smoke", "--data", str(corpus_path), out=out)
    assert result.returncode == 0, result.stderr
    return out, result


def test_smoke_ladder_writes_table_chart_and_samples(smoke):
    out, result = smoke
    folder = out / "smoke"
    table = pd.read_csv(folder / "ladder.csv")
    assert list(table.stage) == STAGE_NAMES
    assert {"stage", "adds", "params", "seeds", "val_loss_mean", "val_loss_std", "delta", "verdict",
            "lecture_val_loss", "train_seconds"} <= set(table.columns)
    assert (table.seeds == 2).all()
    assert set(table.verdict.dropna()) <= {"helped", "within noise", "hurt"}
    assert table.delta.iloc[1:].notna().all()
    assert (folder / "loss_ladder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    samples = (folder / "samples.md").read_text()
    for name in STAGE_NAMES:
        assert f"## {name} " in samples
    assert (folder / "ladder.md").read_text().count("\n| ") >= 1 + len(STAGE_NAMES)
    run = folder / "runs" / "residual" / "seed0"
    assert {"run.json", "curve.csv", "sample.txt", "checkpoint.pt"} <= {p.name for p in run.iterdir()}


def test_second_run_reuses_saved_results(smoke, corpus_path):
    out, _ = smoke
    result = runner("--profile", "smoke", "--stage", "bigram", "--data", str(corpus_path), out=out)
    assert result.returncode == 0, result.stderr
    assert "reusing saved result" in result.stdout


def test_single_stage_trains_only_that_stage(tmp_path, corpus_path):
    result = runner("--stage", "residual", "--profile", "smoke", "--seeds", "0", "--data", str(corpus_path), out=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "smoke" / "runs").iterdir()] == ["residual"]
    sample = runner("--sample", "--stage", "residual", "--profile", "smoke", "--seeds", "0", "--tokens", "40",
                    "--prompt", "ROMEO:", "--data", str(corpus_path), out=tmp_path)
    assert sample.returncode == 0, sample.stderr
    assert sample.stdout.startswith("ROMEO:") and len(sample.stdout.rstrip("\n")) >= 40


def test_chart_redraws_without_training(smoke, corpus_path):
    out, _ = smoke
    png = out / "smoke" / "loss_ladder.png"
    png.unlink()
    result = runner("--chart", "--profile", "smoke", "--data", str(corpus_path), out=out)
    assert result.returncode == 0, result.stderr
    assert png.exists() and "seed 0:" not in result.stdout


def test_list_shows_every_stage_in_order(corpus_path):
    result = runner("--list", "--profile", "smoke", "--data", str(corpus_path))
    assert result.returncode == 0, result.stderr
    listed = [line.split()[1] for line in result.stdout.splitlines()[1:] if line.split()[0].isdigit()]
    from stages import MODERN_LADDER, MODERN_LEFT_OUT
    assert listed == STAGE_NAMES + MODERN_LADDER + MODERN_LEFT_OUT  # each ladder in order, then the pieces left out


def test_unknown_stage_lists_valid_names():
    result = runner("--stage", "transformer")
    assert result.returncode != 0
    assert "invalid choice" in result.stderr and "bigram" in result.stderr and "scaled" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["--profile", "smoke", "--set", "bogus=1"], "unknown hyperparameter 'bogus'"),
    (["--profile", "smoke", "--set", "n_layer=two"], "n_layer must be of type int"),
    (["--profile", "smoke", "--set", "n_embd=30", "--set", "n_head=4"], "divisible"),
    (["--profile", "smoke", "--seeds", "-1"], "non-negative"),
    (["--sample", "--stage", "mlp", "--profile", "smoke"], "has no checkpoint"),
])
def test_bad_input_gets_one_clear_line(tmp_path, corpus_path, args, message):
    result = runner(*args, "--data", str(corpus_path), out=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_compile_trains_the_compiled_model_and_keeps_the_plain_one(tmp_path, corpus_path, monkeypatch):
    """--compile trains torch.compile(model) (here with a backend that runs the traced graph as it is and notes its
    token inputs: the real wrapper, no compile time): the record says so, the checkpoint holds the plain module's
    weights (it loads into a fresh model), the sample comes from the plain module (no batch of one, the
    sampler's, ever reached the compiled one), and the same run is reused without --compile."""
    import torch

    from common.checkpoint import load_checkpoint
    from stages import STAGES
    compiled, batches = [], []
    real_compile = torch.compile

    def noting(graph, example_inputs):  # a torch.compile backend: the graph unchanged, its token inputs noted
        batches.extend(x.shape[0] for x in example_inputs
                       if isinstance(x, torch.Tensor) and x.dtype == torch.long and x.ndim == 2)
        return graph.forward

    def eager_compile(model, **kwargs):
        compiled.append(model)
        return real_compile(model, backend=noting, **kwargs)

    monkeypatch.setattr(torch, "compile", eager_compile)
    args = ["--profile", "smoke", "--stage", "mlp", "--seeds", "0", "--jobs", "1", "--data", str(corpus_path),
            "--out", str(tmp_path)]
    code, _, err = run_main(*args, "--compile")
    assert code == 0, err
    assert len(compiled) == 1 and type(compiled[0]).__name__ == "Model"  # the stage's own model was compiled
    assert batches and 1 not in batches, batches  # training and evaluation batches only: sampling ran uncompiled
    run = tmp_path / "smoke" / "runs" / "mlp" / "seed0"
    record = json.loads((run / "run.json").read_text())
    assert record["compiled"] is True
    checkpoint = load_checkpoint(run / "checkpoint.pt")
    assert not any(k.startswith("_orig_mod") for k in checkpoint["model"])
    from common.profiles import get_profile, make_configs, settings_for
    config, _ = make_configs(STAGES["mlp"].Config, settings_for(get_profile("smoke"), "mlp"), 65)
    STAGES["mlp"].Model(config).load_state_dict(checkpoint["model"])  # strict: the plain module's names
    code, out, err = run_main(*args)
    assert code == 0 and "reusing saved result" in out, err


def test_compile_compiles_every_run_of_one_process(tmp_path, corpus_path, monkeypatch):
    """Each run's model is compiled afresh: one process training several runs (--jobs 1) reaches the compiler for
    the last run too. torch.compile's cache lives on the forward's code, which every run shares, and stops
    compiling (falling back to eager steps, with a warning) after a few graphs unless each run starts clean."""
    import torch

    runs, compiled_in = [], []
    real_compile = torch.compile

    def noting(graph, example_inputs):  # a torch.compile backend: the graph unchanged, which run it came from noted
        compiled_in.append(len(runs))
        return graph.forward

    def eager_compile(model, **kwargs):
        runs.append(model)
        return real_compile(model, backend=noting, **kwargs)

    monkeypatch.setattr(torch, "compile", eager_compile)
    stages = ["mlp", "residual", "layernorm", "dropout", "scaled"]  # a different model each: none reuses a graph
    code, _, err = run_main("--profile", "smoke", "--stage", *stages, "--seeds", "0", "--jobs", "1", "--compile",
                            "--data", str(corpus_path), "--out", str(tmp_path))
    assert code == 0, err
    assert len(runs) == len(stages)
    assert set(compiled_in) == set(range(1, len(stages) + 1)), compiled_in  # every run's graphs, the last one's too


@pytest.mark.parametrize("precision", ["bf16", "auto"])
def test_no_rmsnorm_dtype_warning_in_the_output(tmp_path, corpus_path, precision, monkeypatch):
    """bf16 autocast with an nn.RMSNorm (qk_norm) makes PyTorch warn that it cannot use its fused kernel; the
    runner's output stays free of it, in training and in the precision probe (auto, with an empty cache)."""
    monkeypatch.setenv("GPT_LADDER_CACHE", str(tmp_path / "cache"))
    result = runner("--profile", "smoke", "--stage", "qk_norm", "--seeds", "0", "--set", f"precision={precision}",
                    "--data", str(corpus_path), out=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Mismatch dtype" not in result.stderr + result.stdout


def test_list_marks_the_rungs_the_settings_do_not_suit(corpus_path):
    """n_embd 18: scaled's own 4 heads do not divide it, and rope's rule wants an even head size (18 / 2 = 9);
    the other rungs are listed with their parameters, and the command succeeds."""
    code, out, err = run_main("--list", "--profile", "smoke", "--set", "n_embd=18", "--data", str(corpus_path))
    assert code == 0, err
    rows = {line.split()[1]: line for line in out.splitlines() if line[:2].strip().isdigit()}
    assert "not with these settings: n_embd (18) must be divisible by n_head (4)" in rows["scaled"]
    assert "not with these settings: rotary embeddings need an even head size" in rows["rope"]
    assert "not with these settings" not in rows["mlp"] and rows["mlp"].split()[2].replace(",", "").isdigit()
