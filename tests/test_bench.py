"""The benchmark: the lecture-form reference computes the scaled stage's function, the benchmark's
training step is common.train.train's, the FLOP estimate, the report, and `bench.py --quick` end to end."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from bench.measure import build_model, training_flops_per_token
from bench.reference import GPTLanguageModel, Head, copy_from_scaled
from bench.report import build_report
from conftest import REPO_ROOT, VOCAB
from stages import STAGE_NAMES, STAGES

SMALL = dict(vocab_size=VOCAB, block_size=16, n_embd=32, n_head=4, n_layer=2, dropout=0.0)


def _scaled_and_reference(seed: int = 0, std: float = 0.5, **overrides):
    """A scaled model with large random weights (attention far from uniform) and a reference holding them."""
    config = STAGES["scaled"].Config(**{**SMALL, **overrides})
    torch.manual_seed(seed)
    scaled = STAGES["scaled"].Model(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in scaled.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    reference = copy_from_scaled(GPTLanguageModel(config), scaled)
    return scaled.eval(), reference.eval()


def test_reference_has_the_lecture_form():
    config = STAGES["scaled"].Config(**SMALL)
    model = GPTLanguageModel(config)
    for block in model.blocks:
        assert len(block.sa.heads) == config.n_head
        for head in block.sa.heads:
            assert isinstance(head, Head)
            assert head.key.weight.shape == (config.n_embd // config.n_head, config.n_embd)
            assert head.tril.shape == (config.block_size, config.block_size)
        assert block.ffwd.net[0].out_features == 4 * config.n_embd
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in STAGES["scaled"].Model(config).parameters())


def test_reference_computes_the_same_function_as_scaled():
    scaled, reference = _scaled_and_reference()
    idx = torch.randint(VOCAB, (3, SMALL["block_size"]), generator=torch.Generator().manual_seed(1))
    targets = torch.randint(VOCAB, (3, SMALL["block_size"]), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits_s, loss_s = scaled(idx, targets)
        logits_r, loss_r = reference(idx, targets)
        short_s, none_s = scaled(idx[:, :5])  # shorter context, no targets
        short_r, none_r = reference(idx[:, :5])
    assert logits_s.std() > 1.0  # the random weights make the comparison meaningful
    assert (logits_s[:, 1:] - logits_s[:, :-1]).abs().max() > 1.0  # positions see different pasts
    torch.testing.assert_close(logits_r, logits_s, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss_r, loss_s, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(short_r, short_s, atol=1e-5, rtol=1e-5)
    assert none_s is None and none_r is None


def test_reference_gradients_match_scaled():
    scaled, reference = _scaled_and_reference(seed=3)
    idx = torch.randint(VOCAB, (2, 16), generator=torch.Generator().manual_seed(4))
    targets = torch.randint(VOCAB, (2, 16), generator=torch.Generator().manual_seed(5))
    scaled(idx, targets)[1].backward()
    reference(idx, targets)[1].backward()
    hs = SMALL["n_embd"] // SMALL["n_head"]
    for ref_block, block in zip(reference.blocks, scaled.blocks):
        key_grad = torch.cat([h.key.weight.grad for h in ref_block.sa.heads])  # heads' rows, stacked
        torch.testing.assert_close(key_grad, block.sa.key.weight.grad, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(ref_block.sa.heads[1].value.weight.grad, block.sa.value.weight.grad[hs:2 * hs],
                                   atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(reference.lm_head.weight.grad, scaled.lm_head.weight.grad, atol=1e-5, rtol=1e-4)


def test_copy_from_scaled_rejects_another_depth():
    config = STAGES["scaled"].Config(**SMALL)
    other = STAGES["scaled"].Config(**{**SMALL, "n_layer": 3})
    with pytest.raises(ValueError, match="blocks"):
        copy_from_scaled(GPTLanguageModel(config), STAGES["scaled"].Model(other))


def test_train_step_is_the_training_loop(dataset):
    """The step bench times (common.train.train_step) is the loop of train(): same weights after the same steps."""
    from common.train import make_optimizer, train, train_step

    settings = dict(block_size=8, n_embd=16, n_head=2, n_layer=2, dropout=0.0, batch_size=4, learning_rate=3e-3,
                    warmup_iters=2, lr_decay=True, max_iters=6, eval_interval=100, eval_iters=2)
    torch.manual_seed(0)
    model_a, config, train_config = build_model("scaled", settings, dataset.tokenizer.vocab_size)
    torch.manual_seed(0)
    model_b, _, _ = build_model("scaled", settings, dataset.tokenizer.vocab_size)
    train(model_a, dataset, train_config, seed=7, progress=False)
    optimizer = make_optimizer(model_b, train_config)
    generator = torch.Generator().manual_seed(7)
    model_b.train()
    for step in range(train_config.max_iters):
        train_step(model_b, optimizer, dataset.train, train_config, step, generator)
    for (name, a), b in zip(model_a.named_parameters(), model_b.parameters()):
        torch.testing.assert_close(a, b, msg=name)


def test_flop_estimate():
    config = STAGES["scaled"].Config(**SMALL)
    model = STAGES["scaled"].Model(config)
    n, per_token = training_flops_per_token(model, config.block_size)
    C, L, T, V = config.n_embd, config.n_layer, config.block_size, config.vocab_size
    # per block: q, k, v (no bias), proj, two feed-forward layers, two LayerNorms; then ln_f and lm_head
    per_block = 3 * C * C + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C) + 4 * C
    assert n == L * per_block + 2 * C + (C * V + V)
    assert per_token == 6 * n + 12 * L * T * C
    # the reference is the same function, so the same estimate
    assert training_flops_per_token(GPTLanguageModel(config), T) == (n, per_token)
    bigram = STAGES["bigram"].Model(STAGES["bigram"].Config(vocab_size=VOCAB, block_size=8))
    assert training_flops_per_token(bigram, 8) == (0, 0.0)


def _result(ms: float, **extra):
    return {"params": 1000, "batch_size": 12, "block_size": 64, "max_iters": 2000, "ms": ms,
            "tokens_per_step": 768, "flops_per_step": 1e9, "peak_mb": 300.0, "delta_mb": 40.0, **extra}


def test_report_has_the_table_the_ratio_and_time_to_quality():
    machine = {"date": "2026-01-01 00:00 UTC", "device": "cpu", "cpu": "Test CPU", "cores": 2, "amx_bf16": False,
               "threads": 2, "python": "3.11", "torch": "2.13.0"}
    ceiling = {"gflops": {"fp32": 100.0}, "n": 2048, "repeats": 5}
    rows = [{"setting": "cpu", "stage": "bigram", "result": _result(1.0)},
            {"setting": "cpu", "stage": "mlp", "error": "RuntimeError: boom"},
            {"setting": "nanogpt-recipe", "stage": "scaled", "result": _result(20.0, precision="bf16")},
            {"setting": "nanogpt-recipe", "stage": "reference", "result": _result(80.0)},
            {"setting": "nanogpt-recipe", "stage": "scaled@fp32", "result": _result(30.0, precision="fp32", pinned=True)},
            {"setting": "nanogpt-recipe", "stage": "scaled@bf16", "result": _result(19.0, precision="bf16", pinned=True)},
            {"setting": "nanogpt-recipe", "stage": "nanogpt-shaped@fp32",
             "result": _result(24.0, precision="fp32", pinned=True)},
            {"setting": "nanogpt-recipe", "stage": "nanogpt-shaped@bf16",
             "result": _result(40.0, precision="bf16", pinned=True)}]
    ttq = {"setting": "nanogpt-recipe", "target": 1.88, "reached": False, "steps_run": 2000, "wall": 50.0,
           "best_val": 1.9, "best_step": 2000, "final_val": 1.9, "eval_interval": 250, "eval_iters": 200}
    report = build_report(machine, ceiling, rows, ttq)
    lines = report.splitlines()
    assert "| setting" in report and "% of ceiling" in report and "peak MB" in report
    scaled_line = next(line for line in lines if "| scaled" in line)
    assert "20.00" in scaled_line and "38,400" in scaled_line  # ms/step and tokens/s = 768 / 0.02
    assert "50.00" in scaled_line  # 1e9 FLOPs in 20 ms = 50 GFLOP/s = 50% of a 100 GFLOP/s ceiling
    assert "failed: RuntimeError: boom" in report
    assert "| bf16 (auto)" in scaled_line
    assert "**4.00×**" in report  # reference / scaled
    assert "**1.20×**" in report  # the nanoGPT-shaped model at its faster precision (fp32, 24 ms) / scaled
    assert "not reached" in report and "1.9000" in report
    goals = next(line for line in lines if line.startswith("Goals:"))
    assert "faster than the nanoGPT-shaped model's: 1.20× (not met)" in goals
    assert "5.3% slower (met)" in goals  # auto 20 ms against bf16's 19 ms
    reached = dict(ttq, reached=True, seconds=30.0, step=1500, val_loss=1.87)
    report = build_report(machine, ceiling, rows, dict(reached, steps_run=1501))
    assert "**30.0 s**" in report
    # 2,000 nanoGPT-shaped steps x 24 ms = 48 s against 1,500 steps x 20 ms = 30 s
    assert "1,500 × 20.00 ms = 30.0 s against 2,000 × 24.00 ms = 48.0 s, 1.60× (met)" in report
    assert "final val 1.9000" in build_report(machine, ceiling, rows, reached)  # trained on to the end
    # every row has as many cells as the header
    table = [line for line in lines if line.startswith("|")]
    assert len({line.count("|") for line in table}) == 1


GOLDEN = REPO_ROOT / "tests" / "golden" / "bench_report"
REPORT_CASES = json.loads((GOLDEN / "cases.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", sorted(REPORT_CASES))
def test_report_is_the_golden_text(case):
    """The report, from fixed measurements (tests/golden/bench_report/cases.json: a CPU run as `make bench`
    prints it, one with --ttq-continue and --full-run, a CUDA run, --quick with failures, a bare run and an
    empty one), is exactly the text committed beside them. The golden text was written by the report code
    before bench/ was split into modules, so the split (and any later change) cannot alter what it reports
    unnoticed; a deliberate change to the report rewrites the golden file in the same commit."""
    expected = (GOLDEN / f"{case}.md").read_text(encoding="utf-8")
    assert build_report(**REPORT_CASES[case]) == expected


def test_quick_benchmark_runs_end_to_end(corpus_path, tmp_path):
    out = tmp_path / "bench.md"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GPT_LADDER_DATA": str(corpus_path)}
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "bench.py"), "--quick", "--threads", "1",
                           "--out", str(out)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    stages_in_table = {line.split("|")[2].strip() for line in table[2:]}
    assert stages_in_table == set(STAGE_NAMES) | {"reference", "nanogpt-shaped"}
    precisions = {line.split("|")[3].strip() for line in table[2:]}
    assert {"fp32 (set)", "bf16 (set)"} <= precisions and any(p.endswith("(auto)") for p in precisions)
    assert not any("failed" in line for line in table)
    assert "matmul ceiling" in proc.stdout and "reference / scaled" in proc.stdout
    assert "time to quality" in proc.stdout
    assert out.read_text(encoding="utf-8") in proc.stdout + "\n"


def test_the_nanogpt_shaped_reference_is_a_working_gpt_of_the_same_sizes():
    """The second reference trains like a GPT of scaled's sizes: a causal model, loss ln(65) at init."""
    import math

    from bench.nanogpt_shaped import Model as NanoGPTShaped

    config = STAGES["scaled"].Config(**SMALL)
    torch.manual_seed(0)
    model = NanoGPTShaped(config).eval()
    idx = torch.randint(0, config.vocab_size, (4, config.block_size))
    logits, loss = model(idx, torch.randint(0, config.vocab_size, (4, config.block_size)))
    assert logits.shape == (4, config.block_size, config.vocab_size)
    assert abs(loss.item() - math.log(config.vocab_size)) < 0.15
    changed = idx.clone()
    changed[:, -1] = (changed[:, -1] + 1) % config.vocab_size
    assert torch.allclose(model(changed)[0][:, :-1], logits[:, :-1], atol=1e-6)  # causal
    n, per_token = training_flops_per_token(model, config.block_size)
    assert per_token == 6 * n + 12 * config.n_layer * config.block_size * config.n_embd  # attention counted
    position_table = config.block_size * config.n_embd  # the one table that only looks up: the token table is the
    assert n == sum(p.numel() for p in model.parameters()) - position_table  # output layer too, and multiplies
    scaled = STAGES["scaled"].Model(config)
    assert 0.8 < sum(p.numel() for p in model.parameters()) / sum(p.numel() for p in scaled.parameters()) < 1.0


def test_rows_compared_side_by_side_run_in_alternating_rounds(corpus_path):
    """--rounds N runs scaled and the references N times in turn and reports the median round."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GPT_LADDER_DATA": str(corpus_path)}
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "bench.py"), "--quick", "--threads", "1",
                           "--rounds", "3", "--stages", "scaled", "nanogpt-shaped", "--settings", "recipe-tiny",
                           "--no-ttq", "--steps", "2"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    order = [line.split("bench: ")[1].split(" done")[0] for line in proc.stderr.splitlines() if " done in " in line]
    rows = [name for name in order if name.startswith("recipe-tiny/")]
    assert rows[:3] == ["recipe-tiny/scaled (round 1 of 3)", "recipe-tiny/scaled@fp32 (round 1 of 3)",
                        "recipe-tiny/scaled@bf16 (round 1 of 3)"]  # round 1 of every row before round 2 of any
    assert len(rows) == 15 and rows[-1] == "recipe-tiny/nanogpt-shaped@bf16 (round 3 of 3)"
    assert "3 alternating rounds" in proc.stdout
    by_round = next(line for line in proc.stdout.splitlines() if "round by round:" in line)
    assert by_round.count("×") == 3
    table = [line for line in proc.stdout.splitlines() if line.startswith("| recipe-tiny")]
    assert len(table) == 5  # one row each, however many rounds
