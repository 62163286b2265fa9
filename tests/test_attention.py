"""What attention learned (issue 25): the maps are the weights the model used, causal, each row summing
to one; the averaging rung's map is the uniform causal average; the per-head summary is the figures a
reader computes by hand; `--attention` draws and tabulates a rung, and the report every attention rung."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from common.attention import (CSV_HEADER, attention_maps, has_attention, head_summary, summarise, uniform_figures,
                              validation_windows)
from conftest import TINY, tiny_model
from stages import STAGE_NAMES
from test_bad_input import assert_one_clear_line, run_main, snapshot

ATTENTION_RUNGS = STAGE_NAMES[1:]  # every rung from averaging on mixes positions
LEARNED = STAGE_NAMES[2:]  # every rung from single_head on learns its weights


def _heads(module) -> list:
    return [m for m in module.modules() if callable(getattr(m, "attention_weights", None))]


def _tokens(T: int = TINY["block_size"], batch: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 65, (batch, T), generator=torch.Generator().manual_seed(seed))


def test_bigram_has_no_attention_and_every_later_rung_has():
    assert not has_attention(tiny_model("bigram"))
    assert all(has_attention(tiny_model(stage)) for stage in ATTENTION_RUNGS)


@pytest.mark.parametrize("stage", ATTENTION_RUNGS)
def test_every_map_is_causal_and_its_rows_sum_to_one(stage):
    model = tiny_model(stage)
    maps = attention_maps(model, _tokens())
    layers = getattr(model.config, "n_layer", 1)
    heads = getattr(model.config, "n_head", 1) if stage not in ("averaging", "single_head") else 1
    assert [tuple(w.shape) for w in maps] == [(3, heads, 8, 8)] * layers
    for wei in maps:
        assert torch.allclose(wei.sum(-1), torch.ones(3, heads, 8), atol=1e-6)  # each row is a weighting
        assert torch.equal(torch.triu(wei, diagonal=1), torch.zeros_like(wei))  # nothing from the future
        assert (wei >= 0).all()


@pytest.mark.parametrize("T", [8, 5])
def test_the_averaging_rungs_map_is_the_uniform_causal_average_exactly(T):
    tril = torch.tril(torch.ones(T, T))
    (wei,) = attention_maps(tiny_model("averaging"), _tokens(T))
    assert torch.equal(wei, (tril / tril.sum(1, keepdim=True)).expand(3, 1, T, T))


@pytest.mark.parametrize("fused", [False, True], ids=["explicit", "fused"])
@pytest.mark.parametrize("stage", LEARNED)
def test_the_drawn_weights_are_those_the_forward_pass_used(stage, fused):
    """Each head's output in an ordinary forward pass (fused kernel or explicit softmax) is the drawn weights
    times its values, on the same input and weights; drawing leaves the model as it was."""
    model = tiny_model(stage, fused_attention=fused).eval()
    heads, calls = _heads(model), []
    for head in heads:
        assert head.fused is fused

        def attend(q, k, v, original=head.attend):
            out = original(q, k, v)
            calls.append((v, out))
            return out
        head.attend = attend  # record what the head computes, as the model runs it
    idx = _tokens()
    with torch.no_grad():
        logits, _ = model(idx)
    for head in heads:
        del head.attend
    maps = attention_maps(model, idx)
    assert len(maps) == len(calls) == getattr(model.config, "n_layer", 1)
    for wei, (v, out) in zip(maps, calls):
        v, out = (t if t.dim() == 4 else t.unsqueeze(1) for t in (v, out))  # (B, heads, T, hs)
        if fused:
            torch.testing.assert_close(wei @ v, out, atol=1e-5, rtol=1e-5)
        else:
            assert torch.equal(wei @ v, out)  # the very product the head computed
    assert all(head.fused is fused and "attention_weights" not in vars(head) for head in heads)
    assert not model.training
    with torch.no_grad():
        assert torch.equal(model(idx)[0], logits)


def test_drawing_leaves_a_training_model_training():
    model = tiny_model("dropout").train()
    attention_maps(model, _tokens())
    assert model.training


def test_the_summary_of_a_hand_made_matrix_is_the_one_computed_by_hand():
    one = torch.tensor([[1.0, 0.0, 0.0],
                        [0.25, 0.75, 0.0],
                        [0.5, 0.25, 0.25]])
    previous = torch.tensor([[1.0, 0.0, 0.0],
                             [1.0, 0.0, 0.0],
                             [0.0, 1.0, 0.0]])
    rows = summarise([[torch.stack([one, previous])[None]]])  # one window, one layer, two heads
    entropy_1 = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))  # row 1 of the first head
    entropy_2 = -(0.5 * math.log2(0.5) + 2 * 0.25 * math.log2(0.25))  # row 2: 1.5 bits
    by_hand = [  # query positions 1 and 2 (position 0 can only look at itself)
        {"layer": 1, "head": 1, "current": (0.75 + 0.25) / 2, "previous": (0.25 + 0.25) / 2,
         "distance": ((0.25 * 1) + (0.5 * 2 + 0.25 * 1)) / 2, "entropy": (entropy_1 + entropy_2) / 2},
        {"layer": 1, "head": 2, "current": 0.0, "previous": 1.0, "distance": 1.0, "entropy": 0.0},
    ]
    assert rows == [pytest.approx(row, abs=1e-12) for row in by_hand]


def test_the_summary_averages_over_every_window_whichever_way_they_are_batched():
    wei = torch.softmax(torch.randn(6, 2, 5, 5).masked_fill(torch.triu(torch.ones(5, 5), 1) == 1, float("-inf")), -1)
    together = summarise([[wei, wei.flip(0)]])
    apart = summarise([[wei[:2], wei.flip(0)[:2]], [wei[2:], wei.flip(0)[2:]]])
    assert [r["layer"] for r in together] == [1, 1, 2, 2]
    assert together == [pytest.approx(r, abs=1e-12) for r in apart]


def test_the_uniform_average_has_its_closed_form_figures():
    T = 32
    figures = uniform_figures(T)
    ts = range(1, T)  # query positions with a choice
    assert figures["current"] == pytest.approx(sum(1 / (t + 1) for t in ts) / (T - 1))
    assert figures["previous"] == pytest.approx(figures["current"])
    assert figures["distance"] == pytest.approx(sum(t / 2 for t in ts) / (T - 1))
    assert figures["entropy"] == pytest.approx(sum(math.log2(t + 1) for t in ts) / (T - 1))


def test_the_summary_windows_are_fixed_and_spread_over_the_validation_split():
    val = torch.arange(1000)
    windows = validation_windows(val, 8, n=5)
    assert torch.equal(windows, validation_windows(val, 8, n=5))
    assert windows[:, 0].tolist() == [0, 248, 496, 744, 992] and torch.equal(windows[0], torch.arange(8))
    model = tiny_model("multi_head")
    assert head_summary(model, windows % 65) == head_summary(model, windows % 65)


# --- the command line and the report ----------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus_path) -> Path:
    """A smoke results folder holding averaging and multi_head, seed 0 (its report finds the corpus as the
    runner does: here through $GPT_LADDER_DATA)."""
    out = tmp_path_factory.mktemp("attention")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPT_LADDER_DATA", str(corpus_path))
        code, _, err = run_main("--profile", "smoke", "--stage", "averaging", "multi_head", "--seeds", "0",
                                "--data", str(corpus_path), "--out", str(out), "--jobs", "1")
    assert code == 0, err
    return out


def attention(out: Path, corpus: Path, *args: str):
    return run_main("--attention", *args, "--profile", "smoke", "--data", str(corpus), "--out", str(out))


def test_attention_draws_a_rung_and_prints_its_per_head_table(trained, corpus_path):
    code, out, err = attention(trained, corpus_path, "multi_head", "--prompt", "ROMEO:")
    assert code == 0, err
    folder = trained / "smoke" / "attention" / "local"
    png, csv = folder / "multi_head.png", folder / "multi_head.csv"
    assert png.read_bytes().startswith(b"\x89PNG") and f"wrote {png}" in out
    lines = csv.read_text(encoding="utf-8").splitlines()
    assert lines[0] == CSV_HEADER and len(lines) == 1 + TINY["n_head"]  # one layer of two heads
    assert lines[1].startswith("multi_head,1,1,") and lines[1].endswith(",64,8")  # 64 windows of 8 characters
    assert "| layer | head | on current | on previous | looks back (chars) | entropy (bits) |" in out
    assert "| 1 | 2 |" in out and "of its weight on the previous character" in out
    assert "(multi_head.png)" in (folder / "multi_head.md").read_text(encoding="utf-8")


def test_the_report_draws_every_attention_rung_and_redraws_it_the_same_from_the_weights(trained, corpus_path,
                                                                                       tmp_path, monkeypatch):
    monkeypatch.setenv("GPT_LADDER_DATA", str(corpus_path))
    attention_dir = trained / "smoke" / "attention"
    for name in ("averaging.png", "multi_head.png", "averaging.csv", "multi_head.csv", "summary.md"):
        assert (attention_dir / name).is_file(), name
    summary = (attention_dir / "summary.csv").read_text(encoding="utf-8").splitlines()
    assert summary[0] == CSV_HEADER and [row.split(",")[0] for row in summary[1:]] == ["averaging"] + ["multi_head"] * 2
    clone = tmp_path / "clone"  # as a clean clone has it: no checkpoints, only the committed weights
    shutil.copytree(trained, clone)
    for path in clone.rglob("checkpoint.pt"):
        path.unlink()
    shutil.rmtree(clone / "smoke" / "attention")
    code, _, err = run_main("--chart", "--profile", "smoke", "--out", str(clone))
    assert code == 0, err
    drawn = {k: v for k, v in snapshot(trained / "smoke" / "attention").items() if not k.startswith("local")}
    assert snapshot(clone / "smoke" / "attention") == drawn


@pytest.mark.parametrize("args, message", [
    (["multi_head", "--prompt", "ROMEO é"], "character 'é' is not in the vocabulary"),
    (["multi_head", "--prompt", "ROMEO: what"], "the prompt has 11 characters, more than the 8 that multi_head reads"),
    (["multi_head", "--prompt", ""], "--attention needs characters to draw the weights over"),
    (["single_head", "--prompt", "ROMEO:"], "stage 'single_head' has no checkpoint for profile 'smoke'"),
    (["bigram", "--prompt", "ROMEO:"], "bigram has no attention to draw"),
], ids=["unknown character", "longer than the context", "empty", "no weights", "bigram"])
def test_bad_input_gets_one_clear_line(trained, corpus_path, args, message):
    before = snapshot(trained)
    code, _, err = attention(trained, corpus_path, *args)
    assert_one_clear_line(code, err, message)
    assert snapshot(trained) == before


def test_a_corpus_the_rung_was_not_trained_on_looks_in_its_own_folder(trained, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("ab" * 500, encoding="utf-8")
    code, _, err = run_main("--attention", "multi_head", "--prompt", "ROM", "--profile", "smoke", "--data", str(other),
                            "--out", str(trained))
    assert_one_clear_line(code, err, "stage 'multi_head' has no checkpoint for profile 'smoke'")  # another experiment
    assert f"{trained / 'smoke'} (without --set or --max-iters, on Tiny Shakespeare: without --data)" in err
