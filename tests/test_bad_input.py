"""Bad input: one line saying what is wrong and how to fix it, a non-zero exit, no traceback, and no
change to the results already saved.

Most cases call runner.main in this process (fast); a few run runner.py as a subprocess to show
what a user sees.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import runner
from common.checkpoint import FORMAT_VERSION

ROOT = Path(__file__).resolve().parent.parent


def run_main(*args: str) -> tuple[int, str, str]:
    """runner.main(args) in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = runner.main([*args, "--no-progress"])
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under folder (hidden ones too) with the SHA-256 of its content."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_clear_line(code: int, err: str, message: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert message in lines[0], err


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus_path) -> Path:
    """A results folder holding one trained run: bigram, smoke profile, seed 0."""
    out = tmp_path_factory.mktemp("trained")
    code, _, err = run_main("--profile", "smoke", "--stage", "bigram", "--seeds", "0", "--data", str(corpus_path),
                            "--out", str(out))
    assert code == 0, err
    assert (out / "smoke" / "runs" / "bigram" / "seed0" / "checkpoint.pt").is_file()
    return out


CUDA = torch.cuda.is_available()


@pytest.mark.parametrize("args,message", [
    (["--profile", "nope"], "invalid choice: 'nope'"),
    (["--stage", "transformer"], "invalid choice: 'transformer'"),
    (["--seeds"], "argument --seeds: expected at least one argument"),
    (["--seeds", "-1"], "seeds must be non-negative integers below 2**32, got -1"),
    (["--seeds", "two"], "seeds must be non-negative integers separated by spaces, got 'two'"),
    (["--seeds", "0,1"], "separated by spaces, got '0,1'"),
    (["--set", "bogus=1"], "unknown hyperparameter 'bogus'"),
    (["--set", "n_layer=two"], "n_layer must be of type int"),
    (["--set", "dropout=lots"], "dropout must be of type float"),
    (["--set", "learning_rate"], "is not of the form name=value"),
    (["--set", "n_embd=30", "--set", "n_head=4"], "divisible"),
    (["--stage", "rope", "--set", "n_embd=36", "--set", "n_head=4"], "rotary embeddings need an even head size"),
    (["--stage", "softcap", "--set", "logit_cap=inf"], "logit_cap must be a positive finite number"),
    (["--set", "block_size=0"], "block_size must be positive"),
    (["--set", "block_size=-5"], "block_size must be positive"),
    (["--set", "block_size=200000"], "too large for this corpus"),
    (["--max-iters", "0"], "--max-iters must be positive"),
    (["--jobs", "0"], "--jobs must be at least 1"),
    pytest.param(["--device", "cuda"], "CUDA is not available",
                 marks=pytest.mark.skipif(CUDA, reason="CUDA is available here")),
    (["--device", "cuda:99"], "cuda:99"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--sample", "--stage", "mlp"], "has no checkpoint"),
    (["--sample", "--stage", "bigram", "--prompt", "ROMEO\u20ac"], "is not in the vocabulary"),
    (["--sample", "--stage", "bigram", "--temperature", "0"], "temperature must be positive"),
    (["--sample", "--stage", "bigram", "--top-k", "0"], "top-k must be a positive integer"),
    (["--sample", "--stage", "bigram", "mlp"], "exactly one --stage"),
    # one thing to do per command, and no option the chosen thing would ignore (common/choices.py)
    (["--all", "--stage", "mlp"], "--stage and --all each choose what to train"),
    (["--list", "--sample", "--stage", "bigram"], "--list and --sample are two different things to do"),
    (["--show", "bigram", "--attention", "mlp"], "--show and --attention are two different things to do"),
    (["--chart", "--sample", "--stage", "bigram"], "--chart redraws saved results, --sample does something else"),
    (["--chart", "--stage", "bigram"], "--chart does not read --stage"),
    (["--study", "dropout", "--ladder", "modern"], "--study does not read --ladder"),
    (["--stage", "bigram", "--temperature", "0.5"], "--temperature is read only by --sample, which this command"),
    (["--attention", "mlp", "--prompt", "ROMEO", "--top-k=3"], "--top-k is read only by --sample, which this"),
    (["--list", "--prompt", "ROMEO"], "--prompt is read only by --sample and --attention"),
    (["--list", "--temp", "0.5"], "unrecognized arguments: --temp 0.5"),  # no abbreviations: none slips past
    (["--sample", "--stage", "bigram", "--seeds", "0", "1"], "--sample reads one trained run"),
])
def test_bad_arguments(trained, corpus_path, args, message):
    before = snapshot(trained)
    code, _, err = run_main("--profile", "smoke", *args, "--data", str(corpus_path), "--out", str(trained))
    assert_one_clear_line(code, err, message)
    assert snapshot(trained) == before  # nothing written, nothing changed


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, corpus_text) -> Path:
    folder = tmp_path_factory.mktemp("corpora")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.txt").write_bytes(b" \n\n  \n")
    (folder / "latin1.txt").write_bytes("Fran\u00e7ais, \u00e9t\u00e9\n".encode("latin-1") * 100)
    (folder / "tiny.txt").write_text(corpus_text[:50], encoding="utf-8")
    (folder / "small.txt").write_text(corpus_text[:200], encoding="utf-8")
    (folder / "a_directory").mkdir()
    return folder


@pytest.mark.parametrize("name,message", [
    ("empty.txt", "is empty"),
    ("blank.txt", "is empty"),
    ("latin1.txt", "is not UTF-8 text"),
    ("a_directory", "is a directory"),
    ("missing.txt", "does not exist"),
    ("tiny.txt", "block_size 8 is too large for this corpus"),  # 50 characters: 5 for validation
])
def test_bad_corpus(trained, corpora, name, message):
    before = snapshot(trained)
    code, _, err = run_main("--profile", "smoke", "--stage", "bigram", "--data", str(corpora / name),
                            "--out", str(trained))
    assert_one_clear_line(code, err, message)
    assert str(corpora / name) in err or "block_size" in err
    assert snapshot(trained) == before


def test_a_short_corpus_that_holds_one_batch_trains(corpora, tmp_path):
    # 200 characters: 180 to train, 20 to validate, enough for block_size 8
    code, out, err = run_main("--profile", "smoke", "--stage", "bigram", "--seeds", "0", "--max-iters", "5",
                              "--data", str(corpora / "small.txt"), "--out", str(tmp_path))
    assert code == 0, err
    assert "bigram       seed 0: val" in out


@pytest.mark.parametrize("out", ["regular-file/results", "/proc/gpt-ladder-results"])
def test_unwritable_out(tmp_path, corpus_path, out):
    (tmp_path / "regular-file").write_text("not a folder")  # root can write anywhere chmod forbids; not here
    target = out if out.startswith("/") else str(tmp_path / out)
    code, _, err = run_main("--profile", "smoke", "--stage", "bigram", "--seeds", "0", "--data", str(corpus_path),
                            "--out", target)
    assert_one_clear_line(code, err, f"cannot write to {target}")
    assert "--out" in err


@pytest.fixture
def trained_copy(trained, tmp_path) -> Path:
    """A copy of the trained folder that a test may tamper with."""
    copy = tmp_path / "results"
    shutil.copytree(trained, copy)
    return copy


def _tamper(out: Path, **changes) -> Path:
    path = out / "smoke" / "runs" / "bigram" / "seed0" / "checkpoint.pt"
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    checkpoint.update(changes)
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize("changes,message", [
    ({"profile": "cpu"}, "was made with profile 'cpu', not 'smoke'"),
    ({"format_version": FORMAT_VERSION + 1}, f"has format {FORMAT_VERSION + 1}, newer than this code"),
    ({"stage": "mlp"}, "was made with stage 'mlp', not 'bigram'"),
    ({"model": {"weights": torch.zeros(3)}}, "does not fit the bigram model"),
])
def test_sampling_a_foreign_checkpoint(trained_copy, corpus_path, changes, message):
    path = _tamper(trained_copy, **changes)
    before = snapshot(trained_copy)
    code, _, err = run_main("--sample", "--stage", "bigram", "--profile", "smoke", "--data", str(corpus_path),
                            "--out", str(trained_copy))
    assert_one_clear_line(code, err, message)
    assert str(path) in err
    assert snapshot(trained_copy) == before


def test_a_damaged_checkpoint(trained_copy, corpus_path):
    path = trained_copy / "smoke" / "runs" / "bigram" / "seed0" / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:1000])
    code, _, err = run_main("--sample", "--stage", "bigram", "--profile", "smoke", "--data", str(corpus_path),
                            "--out", str(trained_copy))
    assert_one_clear_line(code, err, "cannot be read")


@pytest.mark.parametrize("changes,message", [
    ({"vocabulary": "abc"}, "a different vocabulary (3 characters, this corpus has 65)"),
    ({"profile": "gpu"}, "was made with profile 'gpu', not 'smoke'"),
    ({"format_version": FORMAT_VERSION + 1}, "newer than this code"),
])
def test_resuming_from_a_foreign_checkpoint(trained_copy, corpus_path, changes, message):
    (trained_copy / "smoke" / "runs" / "bigram" / "seed0" / "run.json").unlink()  # so the run is not reused
    _tamper(trained_copy, **changes)
    before = snapshot(trained_copy)
    code, _, err = run_main("--profile", "smoke", "--stage", "bigram", "--seeds", "0", "--resume",
                            "--data", str(corpus_path), "--out", str(trained_copy))
    assert_one_clear_line(code, err, message)
    assert snapshot(trained_copy) == before  # the checkpoint is not overwritten


def _subprocess(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "runner.py"), *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT)


@pytest.mark.parametrize("args,message,fix", [
    (["--profile", "smoke", "--seeds"], "argument --seeds: expected at least one argument", "see python runner.py --help"),
])
def test_what_a_user_sees(tmp_path, corpus_path, args, message, fix):
    result = _subprocess(*args, "--data", str(corpus_path), "--out", str(tmp_path))
    assert_one_clear_line(result.returncode, result.stderr, message)
    assert fix in result.stderr
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_out_and_prompt_file_expand_a_tilde(monkeypatch, tmp_path):
    """--out=~/x reaches the runner unexpanded (the shell expands no ~ after '='): the runner expands it."""
    monkeypatch.setenv("HOME", str(tmp_path))
    args = runner.build_parser(["bigram"], ["cpu"]).parse_args(["--out=~/results", "--prompt-file=~/prompt.txt"])
    assert args.out == str(tmp_path / "results") and args.prompt_file == str(tmp_path / "prompt.txt")


def test_advice_to_train_keeps_the_options_that_chose_the_folder(trained, corpus_path):
    from common.run import same_options
    assert same_options(runner.ROOT / "results" / "cpu", "cpu") == ""  # the default folder: the advice as it is
    code, _, err = run_main("--profile", "smoke", "--sample", "--stage", "mlp", "--data", str(corpus_path),
                            "--out", str(trained))
    assert_one_clear_line(code, err, "--seeds 0 and this command's --out, --set, --max-iters and --data")
