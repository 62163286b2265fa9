"""A newcomer sees text from every rung in seconds (issue 13): committed weights, sampling options,
`--show`, the samples page, progress by cost, and a fast --help."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_bad_input import assert_one_clear_line, run_main, snapshot

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def committed(tmp_path_factory, corpus_path) -> Path:
    """A smoke ladder (bigram, mlp, scaled; seeds 0 and 1) as a fresh clone has it: no checkpoints."""
    out = tmp_path_factory.mktemp("committed")
    code, _, err = run_main("--profile", "smoke", "--stage", "bigram", "mlp", "scaled", "--data", str(corpus_path),
                            "--out", str(out), "--jobs", "1")
    assert code == 0, err
    for path in out.rglob("checkpoint.pt"):
        path.unlink()
    return out


def sample(out: Path, corpus: Path, *args: str):
    return run_main("--sample", "--profile", "smoke", "--data", str(corpus), "--out", str(out), *args)


def test_the_report_ships_one_seeds_weights_per_rung(committed):
    weights = sorted(p.name for p in (committed / "smoke" / "weights").iterdir())
    assert weights == ["bigram.safetensors", "mlp.safetensors", "scaled.safetensors"]
    from safetensors import safe_open
    with safe_open(str(committed / "smoke" / "weights" / "scaled.safetensors"), framework="pt") as f:
        assert all(f.get_tensor(k).dtype == torch.bfloat16 for k in f.keys())  # half the size of fp32
        assert '"seed": 0' in f.metadata()["gpt_ladder"]


def test_sampling_without_a_checkpoint_uses_the_committed_weights_and_says_so(committed, corpus_path):
    before = snapshot(committed)
    code, out, err = sample(committed, corpus_path, "--stage", "scaled", "--tokens", "60")
    assert code == 0, err
    assert "weights/scaled.safetensors (committed weights, bf16; training seed 0, step 30, val loss" in err
    assert len(out) >= 60
    assert snapshot(committed) == before  # sampling writes nothing


def test_samples_are_reproducible_and_the_seed_changes_them(committed, corpus_path):
    args = ["--stage", "mlp", "--tokens", "80", "--num-samples", "2", "--sample-seed", "7"]
    first, second = sample(committed, corpus_path, *args), sample(committed, corpus_path, *args)
    other = sample(committed, corpus_path, *args[:-1], "8")
    assert first[0] == 0 and first[1] == second[1]
    assert first[2].count("sample 1 of 2, sample seed 7") == 1 and "sample 2 of 2, sample seed 8" in first[2]
    assert other[1] != first[1]
    assert len(first[1].split("\n")) >= 2


def test_a_prompt_from_a_file(committed, corpus_path, tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("ROMEO:\n", encoding="utf-8")
    code, out, err = sample(committed, corpus_path, "--stage", "bigram", "--tokens", "20", "--prompt-file", str(prompt))
    assert code == 0, err and out.startswith("ROMEO:\n")
    code, _, err = sample(committed, corpus_path, "--stage", "bigram", "--prompt", "A", "--prompt-file", str(prompt))
    assert code == 2 and "not allowed with argument" in err


def test_another_training_seed_without_its_checkpoint_says_what_exists(committed, corpus_path):
    code, _, err = sample(committed, corpus_path, "--stage", "mlp", "--seeds", "1")
    assert_one_clear_line(code, err, "are of seed 0: drop --seeds to sample them")


def test_a_local_checkpoint_comes_first_and_the_header_names_it(tmp_path, corpus_path):
    code, _, err = run_main("--profile", "smoke", "--stage", "bigram", "--seeds", "0", "--max-iters", "60",
                            "--data", str(corpus_path), "--out", str(tmp_path))
    assert code == 0, err
    code, _, err = sample(tmp_path, corpus_path, "--stage", "bigram", "--max-iters", "60", "--tokens", "5")
    checkpoint = next(tmp_path.glob("smoke-*/runs/bigram/seed0/checkpoint.pt"))
    assert code == 0 and f"{checkpoint} (checkpoint; training seed 0, step 60, val loss" in err
    code, _, err = sample(tmp_path, corpus_path, "--stage", "bigram")  # without --max-iters: another folder
    assert_one_clear_line(code, err, f"trained with other settings, with the same options: "
                                     f"{checkpoint.parents[3]} (--set max_iters=60)")


def test_the_samples_page_continues_one_prompt_on_every_rung(committed):
    page = (committed / "smoke" / "samples.md").read_text(encoding="utf-8")
    sections = page.split("\n## ")[1:]
    assert [s.split(" ")[0] for s in sections] == ["bigram", "mlp", "scaled"]
    assert all("```text\nJULIET:\n" in s for s in sections)


def test_show_names_the_stage_file_of_every_piece(corpus_path):
    code, out, err = run_main("--show", "dropout", "--profile", "cpu", "--data", str(corpus_path))
    assert code == 0, err
    assert "adds over layernorm: dropout" in out
    for piece in ("stages/dropout.py", "single_head.py", "layernorm.py", "torch.nn"):
        assert piece in out
    assert "159,937" in out  # the parameters, as --list counts them
    attention = next(line for line in out.splitlines() if "sa: MultiHeadAttention" in line)
    assert attention.split()[-4:] == ["<", "multi_head.py", "<", "single_head.py"]


def test_show_without_a_profile_prints_only_the_model(corpus_path):
    code, out, err = run_main("--show", "bigram", "--data", str(corpus_path))
    assert code == 0, err
    assert "no --profile given" not in out and out.lstrip().startswith("bigram")


def test_help_imports_no_torch():
    code = ("import sys; sys.path.insert(0, %r); import runner\n"
            "try:\n    runner.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'LIGHT')") % str(ROOT)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().endswith("LIGHT") and "--num-samples" in result.stdout


def test_progress_counts_work_and_reused_runs_at_once(corpus_path):
    from common.jobs import LadderProgress, run_cost
    from conftest import smoke_context

    ctx = smoke_context("unused", corpus_path)
    tasks = [("bigram", 0), ("scaled", 0)]
    progress = LadderProgress(ctx, tasks, "test")
    share = run_cost(ctx, "scaled") / (run_cost(ctx, "scaled") + run_cost(ctx, "bigram"))
    progress.finished("bigram", 0)  # reused: done at once
    assert progress.bar.n == pytest.approx(100 * (1 - share))
    progress.put(("scaled", 0, 15, 3.0))  # half its steps
    assert progress.bar.n == pytest.approx(100 * (1 - share / 2))
    assert share > 0.9  # a scaled step is far costlier than a bigram step: counting steps would mislead


def test_time_left_is_the_pace_of_trained_work_not_of_reused_runs(corpus_path):
    from common.jobs import LadderProgress
    from conftest import smoke_context

    ctx = smoke_context("unused", corpus_path)
    now = [0.0]
    progress = LadderProgress(ctx, [("scaled", 0), ("scaled", 1), ("scaled", 2)], "test", clock=lambda: now[0])
    progress.finished("scaled", 0)  # reused at once: a third done, but no pace yet
    assert progress.bar.n == pytest.approx(100 / 3) and progress.seconds_left() is None
    progress.put(("scaled", 1, 0, 4.0))
    now[0] = 10.0
    progress.put(("scaled", 1, 15, 3.0))  # half a run in 10 s: the 1.5 runs left take 30 s
    assert progress.seconds_left() == pytest.approx(30.0)
    progress.put(("scaled", 2, 20, 3.0))  # a resumed run's first report: its earlier steps are not this pace
    now[0] = 20.0
    assert progress.seconds_left() == pytest.approx(20.0 / 0.5 * (1 / 2 + 1 / 3))


def _from_other_code(weights: Path) -> None:
    """Rewrite a weights file's metadata as if another code had trained it."""
    import json

    from safetensors.torch import load_file, save_file
    from safetensors import safe_open
    with safe_open(str(weights), framework="pt") as f:
        meta = json.loads(f.metadata()["gpt_ladder"])
    assert meta["code"]  # the fingerprint of the code that trained them
    meta["code"] = "0123456789abcdef"
    save_file(load_file(str(weights)), str(weights), metadata={"gpt_ladder": json.dumps(meta)})


def test_weights_from_other_code_are_sampled_with_a_note(committed, corpus_path, tmp_path):
    import shutil
    shutil.copytree(committed, tmp_path / "out")
    _from_other_code(tmp_path / "out" / "smoke" / "weights" / "bigram.safetensors")
    code, out, err = sample(tmp_path / "out", corpus_path, "--stage", "bigram", "--tokens", "10")
    assert code == 0 and len(out) >= 10, err
    assert "note: " in err and "was trained by other code (fingerprint 0123456789abcdef" in err


def test_the_report_draws_attention_from_weights_of_other_code_with_a_note(committed, corpus_path, tmp_path):
    import shutil
    shutil.copytree(committed, tmp_path / "out")
    _from_other_code(tmp_path / "out" / "smoke" / "weights" / "mlp.safetensors")
    code, _, err = run_main("--chart", "--profile", "smoke", "--data", str(corpus_path), "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert "note: attention of mlp: " in err and "was trained by other code (fingerprint 0123456789abcdef" in err


def test_show_marks_what_a_rung_adds_and_needs_no_corpus(committed, monkeypatch):
    import common.corpus

    def no_download(*args, **kwargs):
        raise AssertionError("--show must not download the corpus")

    monkeypatch.delenv("GPT_LADDER_DATA", raising=False)
    monkeypatch.setattr(common.corpus, "CACHE_PATH", committed / "no-corpus-here.txt")
    monkeypatch.setattr(common.corpus, "download", no_download)
    code, out, err = run_main("--show", "dropout", "--profile", "smoke", "--out", str(committed))
    assert code == 0, err
    added = [line.split()[1] for line in out.splitlines() if line.startswith("+ ") and "marks" not in line]
    assert added == ["attn_dropout:", "resid_dropout:", "3:"]  # dropout's pieces, and nothing else
    assert "more Block, each as 0 above" in out  # the repeated blocks are counted, not printed again
    code, out, _ = run_main("--show", "multi_head", "--profile", "smoke", "--out", str(committed))
    assert "nothing, the change is in forward()" in out


def test_a_closed_pipe_is_not_an_error(corpus_path):
    process = subprocess.Popen([sys.executable, str(ROOT / "runner.py"), "--list", "--profile", "smoke",
                                "--data", str(corpus_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               bufsize=0)
    process.stdout.close()  # as `| head -0` would
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141 and "error" not in err and "Traceback" not in err


def test_weights_too_large_for_git_are_not_written_and_the_checkpoint_still_samples(corpus_path, tmp_path, monkeypatch):
    """A rung whose bf16 weights pass the size cap keeps only its checkpoint, and the report says so."""
    import common.weights

    monkeypatch.setattr(common.weights, "MAX_WEIGHTS_BYTES", 20_000)  # bigram: 8.5 kB; scaled (smoke): ~60 kB
    out = tmp_path / "out"
    code, _, err = run_main("--profile", "smoke", "--stage", "bigram", "scaled", "--seeds", "0",
                            "--data", str(corpus_path), "--out", str(out), "--jobs", "1")
    assert code == 0, err
    assert sorted(p.name for p in (out / "smoke" / "weights").iterdir()) == ["bigram.safetensors"]
    assert "no weights file for scaled (" in err and "MiB a results folder keeps in git" in err
    code, text, err = sample(out, corpus_path, "--stage", "scaled", "--tokens", "20")
    assert code == 0, err
    assert len(text) > 20
