"""Reliability, round 2 (issue 11): no data loss on resume, no hang, no traceback for a careless or
hostile user. Each case failed before; the pattern is test_bad_input's: exit 2, one `error:` line,
nothing already written lost."""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from common.corpus import corpus_id
from test_bad_input import assert_one_clear_line, run_main
from test_bad_input import snapshot as _snapshot


def snapshot(folder: Path) -> dict[str, str]:
    """Every file's hash, but for the runner's lock file (created empty on the first locked run)."""
    return {k: v for k, v in _snapshot(folder).items() if not k.endswith(".runner.lock")}

SMOKE = ["--profile", "smoke", "--seeds", "0", "--no-progress"]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, corpus_path) -> Path:
    """A results folder holding an interrupted residual run (smoke, seed 0, stopped at step 20 of 300)."""
    from common.run import train_run
    from conftest import smoke_context

    out = tmp_path_factory.mktemp("interrupted")
    ctx = smoke_context(out, corpus_path, overrides={"max_iters": 300})
    calls = iter(range(10_000))
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert train_run(ctx, "residual", 0, lambda: next(calls) >= 19) is False
    return out


@pytest.fixture
def interrupted_copy(interrupted, tmp_path) -> Path:
    copy = tmp_path / "results"
    shutil.copytree(interrupted, copy)
    return copy


def _checkpoint(out: Path) -> Path:
    return next(out.glob("smoke-*/runs/residual/seed0/checkpoint.pt"))


def test_resume_on_another_corpus_trains_in_its_own_folder_and_keeps_the_checkpoint(interrupted_copy, corpus_path,
                                                                                    tmp_path):
    longer = tmp_path / "longer.txt"
    longer.write_text(corpus_path.read_text(encoding="utf-8") + "One more line.\n", encoding="utf-8")
    before, folder = snapshot(interrupted_copy), _checkpoint(interrupted_copy).parts[-5]
    code, out, err = run_main(*SMOKE, "--stage", "residual", "--max-iters", "300", "--resume", "--data", str(longer),
                              "--out", str(interrupted_copy))
    assert code == 0, err
    assert "resuming" not in out  # another corpus is another experiment: a folder of its own (issue 24)
    after = snapshot(interrupted_copy)
    assert {k: after.get(k) for k in before} == before
    assert {Path(k).parts[0] for k in after.keys() - before.keys()} == {f"{folder}-data-{corpus_id(str(longer))}"}


def test_resume_with_another_seeds_checkpoint_is_refused(interrupted_copy, corpus_path):
    path = _checkpoint(interrupted_copy)
    seed1 = path.parent.parent / "seed1" / "checkpoint.pt"
    seed1.parent.mkdir()
    shutil.copy(path, seed1)  # a checkpoint moved by hand into another seed's folder
    before = snapshot(interrupted_copy)
    code, _, err = run_main("--profile", "smoke", "--seeds", "1", "--stage", "residual", "--max-iters", "300",
                            "--resume", "--data", str(corpus_path), "--out", str(interrupted_copy))
    assert_one_clear_line(code, err, "seed 0 (now 1)")
    assert snapshot(interrupted_copy) == before


def test_other_settings_are_named(interrupted_copy, corpus_path):
    path = _checkpoint(interrupted_copy)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["key"] = "0123456789abcdef"  # as if the profile's learning rate had changed since
    checkpoint["key_parts"]["settings"]["learning_rate"] = 0.5
    torch.save(checkpoint, path)
    before = snapshot(interrupted_copy)
    code, _, err = run_main(*SMOKE, "--stage", "residual", "--max-iters", "300", "--resume", "--data",
                            str(corpus_path), "--out", str(interrupted_copy))
    assert_one_clear_line(code, err, "other settings: learning_rate 0.5 (now 0.003)")
    assert snapshot(interrupted_copy) == before


def test_a_plain_run_never_starts_an_interrupted_one_over(interrupted_copy, corpus_path):
    before = snapshot(interrupted_copy)
    code, _, err = run_main(*SMOKE, "--stage", "residual", "--max-iters", "300", "--data", str(corpus_path),
                            "--out", str(interrupted_copy))
    assert_one_clear_line(code, err, "(step 20 of 300) is saved in")
    assert "--resume" in err and "--force" in err
    assert snapshot(interrupted_copy) == before


def test_force_starts_over_and_resume_continues(interrupted_copy, corpus_path):
    code, out, err = run_main(*SMOKE, "--stage", "residual", "--max-iters", "300", "--resume", "--data",
                              str(corpus_path), "--out", str(interrupted_copy))
    assert code == 0, err
    assert "resuming from step 20 of 300" in out


@pytest.mark.parametrize("args, message", [
    (["--set", "n_embd=0"], "n_embd must be a positive integer, got 0"),
    (["--set", "n_embd=-4"], "n_embd must be a positive integer, got -4"),
    (["--set", "n_layer=-1"], "n_layer must be a positive integer, got -1"),
    (["--set", "n_head=0"], "n_head must be a positive integer, got 0"),
    (["--set", "weight_decay=nan"], "weight_decay must be a finite number"),
    (["--set", "grad_clip=nan"], "grad_clip must be a finite number"),
    (["--set", "learning_rate=inf"], "learning_rate must be a finite number"),
    (["--set", "block_size=100000"], "GiB to train"),
    (["--seeds", "99999999999999999999"], "below 2**32"),
    (["--out", ""], "--out must name a folder"),
])
def test_bad_settings_get_one_line_even_with_parallel_runs(tmp_path, corpus_path, args, message):
    out = ["--out", str(tmp_path)] if "--out" not in args else []
    code, _, err = run_main("--profile", "smoke", "--stage", "bigram", "residual", "--jobs", "2", *args,
                            "--data", str(corpus_path), *out)
    assert_one_clear_line(code, err, message)
    assert not list(tmp_path.glob("*/runs"))


def test_a_configuration_too_big_to_build_is_refused_before_building_it(corpus_path):
    code, _, err = run_main("--show", "residual", "--profile", "smoke", "--set", "block_size=100000", "--data",
                            str(corpus_path))
    assert_one_clear_line(code, err, "GiB to train")
    # --list builds none of them either: the bigram (no size that grows with the context) fits, the rest say why not
    code, out, err = run_main("--list", "--profile", "smoke", "--set", "block_size=100000", "--data", str(corpus_path))
    rows = {line.split()[1]: line for line in out.splitlines() if line[:2].strip().isdigit()}
    assert code == 0 and "not with these settings" not in rows["bigram"], err
    assert "(not with these settings: stage residual needs about" in rows["residual"] and "GiB to train" in rows["residual"]


@pytest.fixture(scope="module")
def sampled(tmp_path_factory, corpus_path) -> Path:
    out = tmp_path_factory.mktemp("sampled")
    code, _, err = run_main(*SMOKE, "--stage", "bigram", "--data", str(corpus_path), "--out", str(out))
    assert code == 0, err
    return out


@pytest.mark.parametrize("value", ["nan", "inf", "1e-40", "-1"])
def test_a_temperature_that_cannot_sample_gets_one_line(sampled, corpus_path, value):
    code, out, err = run_main("--sample", "--stage", "bigram", "--profile", "smoke", "--temperature", value,
                              "--data", str(corpus_path), "--out", str(sampled))
    assert_one_clear_line(code, err, "temperature must be")


@pytest.mark.parametrize("value, why", [("0.001", "lower values make the softmax overflow"),
                                        ("1000", "higher values draw every character about equally")])
def test_a_temperature_out_of_range_says_why_on_its_side(sampled, corpus_path, value, why):
    code, out, err = run_main("--sample", "--stage", "bigram", "--profile", "smoke", "--temperature", value,
                              "--data", str(corpus_path), "--out", str(sampled))
    assert_one_clear_line(code, err, why)


def test_a_huge_sample_is_refused_up_front(sampled, corpus_path):
    code, out, err = run_main("--sample", "--stage", "bigram", "--profile", "smoke", "--tokens", "10000000",
                              "--data", str(corpus_path), "--out", str(sampled))
    assert_one_clear_line(code, err, "--tokens must be at most")


def test_a_fifo_or_a_device_is_not_a_corpus(tmp_path, corpus_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        code, _, err = run_main(*SMOKE, "--stage", "bigram", "--data", str(path), "--out", str(tmp_path / "o"))
        assert_one_clear_line(code, err, "is not a regular file")


def test_a_corpus_over_the_size_cap_is_refused(tmp_path, monkeypatch):
    import common.corpus as corpus
    monkeypatch.setattr(corpus, "MAX_CORPUS_BYTES", 100)
    big = tmp_path / "big.txt"
    big.write_text("abc" * 50)
    code, _, err = run_main(*SMOKE, "--stage", "bigram", "--data", str(big), "--out", str(tmp_path / "o"))
    assert_one_clear_line(code, err, "over the 1 GiB this tool reads")


@pytest.mark.parametrize("text, message", [
    ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "only one distinct character"),
    ("abcde", "the corpus is too short (5 characters)"),
])
def test_a_corpus_that_cannot_train_says_why(tmp_path, text, message):
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    code, _, err = run_main(*SMOKE, "--stage", "bigram", "--data", str(path), "--out", str(tmp_path / "o"))
    assert_one_clear_line(code, err, message)
    assert "block_size of at most 0" not in err


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(interrupted_copy, corpus_path,
                                                                                   monkeypatch):
    path = _checkpoint(interrupted_copy)
    kept = path.read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file "
                           "data/3: file write failed")

    monkeypatch.setattr(torch, "save", full_disk)
    code, _, err = run_main(*SMOKE, "--stage", "residual", "--max-iters", "300", "--resume", "--jobs", "1",
                            "--data", str(corpus_path), "--out", str(interrupted_copy))
    assert_one_clear_line(code, err, "cannot write checkpoint")
    assert "free some disk space" in err
    assert path.read_bytes() == kept
    assert not [p for p in path.parent.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize("content", ['{"stage": "residual"}', "[1, 2, 3]", '{"stage": "bigram", "seed": "x"}'])
def test_chart_skips_a_record_of_the_wrong_shape(sampled, tmp_path, corpus_path, content):
    out = tmp_path / "results"
    shutil.copytree(sampled, out)
    bogus = out / "smoke" / "runs" / "residual" / "seed0" / "run.json"
    bogus.parent.mkdir(parents=True)
    bogus.write_text(content)
    code, stdout, err = run_main("--chart", "--profile", "smoke", "--data", str(corpus_path), "--out", str(out))
    assert code == 0 and "Traceback" not in err
    assert err.strip().splitlines() == [f"skipping {bogus}: not a finished run's record (retrain it with --force)"]
    assert "| bigram |" in stdout and "| residual |" not in stdout


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory, corpus_path) -> Path:
    out = tmp_path_factory.mktemp("two_seeds")
    code, _, err = run_main("--profile", "smoke", "--seeds", "0", "1", "--stage", "bigram", "--data", str(corpus_path),
                            "--out", str(out))
    assert code == 0, err
    return out


@pytest.mark.parametrize("name, damage", [("curve.csv", b""), ("curve.csv", None), ("sample.txt", b"\xff\xfe R\x00"),
                                          ("sample.txt", None)], ids=["empty curve", "no curve", "binary sample",
                                                                      "no sample"])
def test_chart_skips_a_run_whose_curve_or_sample_cannot_be_read(two_seeds, tmp_path, corpus_path, name, damage):
    out = tmp_path / "results"
    shutil.copytree(two_seeds, out)
    run = out / "smoke" / "runs" / "bigram" / "seed1"
    if damage is None:
        (run / name).unlink()
    else:
        (run / name).write_bytes(damage)
    code, stdout, err = run_main("--chart", "--profile", "smoke", "--data", str(corpus_path), "--out", str(out))
    assert code == 0 and "Traceback" not in err, err
    assert err.strip().splitlines() == [f"skipping {run}: its {name} cannot be read (retrain it with --force)"]
    assert "| bigram |" in stdout and (out / "smoke" / "samples.md").is_file()


def test_checkpoints_load_only_tensors_and_plain_data(tmp_path):
    """A checkpoint that would run code when unpickled is refused (weights_only=True)."""
    from common.checkpoint import load_checkpoint
    from common.errors import LadderError

    path = tmp_path / "checkpoint.pt"
    torch.save({"format_version": 1, "payload": _Executes(tmp_path / "pwned")}, path)
    with pytest.raises(LadderError, match="cannot be read"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


class _Executes:
    """Unpickling this calls Path.touch(target): code run by loading a file."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_peak_memory_units_on_macos(monkeypatch):
    import resource

    import common.memory as memory
    monkeypatch.setattr(memory, "_status_kb", lambda field: None)
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(resource, "getrusage", lambda who: type("R", (), {"ru_maxrss": 300 * 2**20})())
    meter = memory.MemoryMeter(torch.device("cpu"))
    assert meter.read()[0] == pytest.approx(300.0)  # bytes on macOS: 300 MB, not 300 GB
