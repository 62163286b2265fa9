"""A results folder holds one experiment (issue 24): another corpus trains into a folder of its own, a
finished run is replaced only with --force, --chart never tabulates two experiments together, and every
setting is checked by every rung that has it, whichever rungs are trained."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from test_bad_input import assert_one_clear_line, run_main, snapshot

SMOKE = ["--profile", "smoke", "--jobs", "1"]


def _snapshot(folder: Path) -> dict[str, str]:
    return {k: v for k, v in snapshot(folder).items() if not k.endswith(".runner.lock")}


@pytest.fixture(scope="module")
def ladder(tmp_path_factory, corpus_path) -> Path:
    """bigram and averaging, seeds 0 and 1, on Tiny Shakespeare: <out>/smoke."""
    out = tmp_path_factory.mktemp("ladder")
    code, _, err = run_main(*SMOKE, "--stage", "bigram", "averaging", "--seeds", "0", "1", "--data", str(corpus_path),
                            "--out", str(out))
    assert code == 0, err
    return out


@pytest.fixture
def ladder_copy(ladder, tmp_path) -> Path:
    copy = tmp_path / "results"
    shutil.copytree(ladder, copy)
    return copy


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory, corpus_path) -> Path:
    """The first 55,000 characters of Tiny Shakespeare (59 distinct characters, not 65)."""
    path = tmp_path_factory.mktemp("corpora") / "small.txt"
    path.write_text(corpus_path.read_text(encoding="utf-8")[:55_000], encoding="utf-8")
    return path


def test_tiny_shakespeare_keeps_the_committed_folder_names(corpus_path, tmp_path):
    from common.corpus import corpus_id
    from common.run import results_folder
    copy = tmp_path / "copy.txt"
    shutil.copy(corpus_path, copy)
    assert corpus_id(None) is None and corpus_id(str(corpus_path)) is None and corpus_id(str(copy)) is None
    assert results_folder("results", "cpu", {}, corpus_id(str(copy))) == Path("results/cpu")
    assert results_folder("results", "cpu", {"residual": False}, None) == Path("results/cpu-b045f884")


def test_another_corpus_trains_into_its_own_folder(ladder_copy, small_corpus):
    before = _snapshot(ladder_copy / "smoke")
    code, out, err = run_main(*SMOKE, "--stage", "averaging", "--seeds", "0", "1", "--data", str(small_corpus),
                              "--out", str(ladder_copy))
    assert code == 0, err
    assert _snapshot(ladder_copy / "smoke") == before  # the finished runs on the whole corpus are untouched
    digest = hashlib.sha256(small_corpus.read_text(encoding="utf-8").encode()).hexdigest()[:8]
    own = ladder_copy / f"smoke-data-{digest}"
    assert f"-> {own}" in out
    table = pd.read_csv(own / "ladder.csv")
    assert set(table.stage[table.seeds > 0]) == {"averaging"}  # no comparison with the other corpus's bigram
    record = json.loads((own / "runs" / "averaging" / "seed0" / "run.json").read_text())
    assert record["model_config"]["vocab_size"] == 59
    # the other corpus's folder is where its --chart, --sample and next runs look
    code, out, err = run_main(*SMOKE, "--stage", "averaging", "--seeds", "0", "--data", str(small_corpus),
                              "--out", str(ladder_copy))
    assert code == 0 and "averaging    seed 0: reusing saved result" in out, err


@pytest.mark.parametrize("change, message", [
    ("settings", "made with other settings: learning_rate 0.5 (now 0.003): replace it with --force, or train into "
                 "another folder with --out"),
    ("code", "made with other code (this GPT Ladder has changed since): replace it with --force"),
], ids=["a record without key_parts, as committed ones", "another code fingerprint"])
def test_a_finished_run_is_replaced_only_with_force(ladder_copy, corpus_path, change, message):
    path = ladder_copy / "smoke" / "runs" / "averaging" / "seed1" / "run.json"
    record = json.loads(path.read_text())
    record["key"] = "0123456789abcdef"  # as if the profile or the code had changed since it was trained
    if change == "settings":
        record.pop("key_parts", None)
        record["settings"]["learning_rate"] = 0.5
    else:
        record["code"] = "fedcba9876543210"
        record.get("key_parts", {})["code"] = record["code"]
    path.write_text(json.dumps(record))
    before = _snapshot(ladder_copy)
    args = [*SMOKE, "--stage", "bigram", "averaging", "--seeds", "0", "1", "--data", str(corpus_path),
            "--out", str(ladder_copy)]
    code, out, err = run_main(*args)
    assert_one_clear_line(code, err, f"{path.parent} holds a finished run of averaging, seed 1, {message}")
    assert _snapshot(ladder_copy) == before  # refused before any training: nothing replaced, nothing written
    assert "training" not in out
    code, out, err = run_main(*args, "--force")
    assert code == 0, err
    assert json.loads(path.read_text())["key"] != "0123456789abcdef"


def test_resume_does_not_replace_a_finished_run_either(ladder_copy, corpus_path):
    path = ladder_copy / "smoke" / "runs" / "bigram" / "seed0" / "run.json"
    for seed in (0, 1):
        other = path.parent.parent / f"seed{seed}" / "run.json"
        record = json.loads(other.read_text())
        record["key"] = "0123456789abcdef"
        record.get("key_parts", {})["data"] = "another corpus"
        other.write_text(json.dumps(record))
    before = _snapshot(ladder_copy)
    code, _, err = run_main(*SMOKE, "--stage", "bigram", "--seeds", "0", "1", "--resume", "--data", str(corpus_path),
                            "--out", str(ladder_copy))
    assert_one_clear_line(code, err, "holds a finished run of bigram, seed 0, made with other data")
    assert "(1 more finished run differs too)" in err
    assert _snapshot(ladder_copy) == before


def test_chart_tabulates_one_experiment_and_names_the_runs_it_skips(ladder_copy, corpus_path):
    for seed in (0, 1):  # bigram as if trained earlier on the first 55,000 characters
        path = ladder_copy / "smoke" / "runs" / "bigram" / f"seed{seed}" / "run.json"
        record = json.loads(path.read_text())
        record["model_config"]["vocab_size"], record["train_chars_used"] = 59, 49_500
        record["finished_at"] = "2000-01-01T00:00:00+0000"
        path.write_text(json.dumps(record))
    code, stdout, err = run_main("--chart", "--profile", "smoke", "--data", str(corpus_path), "--out", str(ladder_copy))
    assert code == 0 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"skipping 2 runs of another experiment in {ladder_copy / 'smoke'}: bigram (seeds 0, 1), "
                               f"made with another corpus (59 distinct characters, not 65; 49,500 to train on, not 1,003,854) "), err
    table = pd.read_csv(ladder_copy / "smoke" / "ladder.csv")
    assert dict(zip(table.stage[table.seeds > 0], table.seeds[table.seeds > 0])) == {"averaging": 2}
    assert table.delta.isna().all()  # averaging is not compared with the other corpus's bigram


@pytest.mark.parametrize("profile", ["lecture", "gpu", "cpu", "smoke"])
def test_a_profiles_ladder_is_one_experiment(profile):
    """A rung's own settings (scaled's size, the lecture's bigram rate) do not make it another experiment."""
    from common.profiles import get_profile, settings_for
    from common.results import differences
    from stages import STAGE_NAMES
    records = [{"stage": stage, "seed": 0, "profile": profile, "settings": settings_for(get_profile(profile), stage),
                "code": "0123456789abcdef", "model_config": {"vocab_size": 65}, "train_chars_used": 1_003_854}
               for stage in STAGE_NAMES]
    assert [(a["stage"], b["stage"], differences(a, b)) for a in records for b in records if differences(a, b)] == []
    averaging, single_head = records[1], records[2]
    shorter = {**averaging, "settings": {**averaging["settings"], "max_iters": 1}}
    assert differences(shorter, single_head) == [f"max_iters 1, not {single_head['settings']['max_iters']}"]


@pytest.mark.parametrize("stage", ["bigram", "averaging", "mlp", "residual", "layernorm"])
@pytest.mark.parametrize("setting, message", [
    ("dropout=1.5", "dropout must be in [0, 1), got 1.5"),
    ("dropout=nan", "dropout must be in [0, 1), got nan"),
    ("dropout=-0.1", "dropout must be in [0, 1), got -0.1"),
    ("n_head=3", "n_embd (16) must be divisible by n_head (3)"),
    ("n_layer=0", "n_layer must be a positive integer, got 0"),
])
def test_every_setting_is_checked_whichever_rung_is_trained(stage, setting, message, corpus_path, tmp_path):
    code, out, err = run_main(*SMOKE, "--stage", stage, "--seeds", "0", "--max-iters", "2", "--set", setting,
                              "--data", str(corpus_path), "--out", str(tmp_path))
    assert_one_clear_line(code, err, message)
    assert not list(tmp_path.rglob("run.json")) and "training" not in out


def test_a_swept_value_is_checked_by_every_rung_too(corpus_path, tmp_path):
    code, _, err = run_main("--sweep", "dropout=0.1,1.5", "--stage", "residual", *SMOKE, "--seeds", "0",
                            "--data", str(corpus_path), "--out", str(tmp_path))
    assert_one_clear_line(code, err, "dropout must be in [0, 1), got 1.5")
    assert not list(tmp_path.rglob("run.json"))


def test_a_rungs_own_settings_are_checked_only_when_it_trains(corpus_path, tmp_path):
    """The checks see the settings of the rung trained: n_embd 18 suits mlp's 2 heads (smoke), not the 4 that
    scaled's own settings give it, so it trains mlp and is refused for scaled."""
    args = [*SMOKE, "--seeds", "0", "--max-iters", "2", "--set", "n_embd=18", "--data", str(corpus_path),
            "--out", str(tmp_path)]
    code, _, err = run_main(*args, "--stage", "scaled")
    assert_one_clear_line(code, err, "n_embd (18) must be divisible by n_head (4)")
    code, out, err = run_main(*args, "--stage", "mlp")
    assert code == 0 and "mlp          seed 0: val" in out, err
    # a later rung's rule about settings mlp has too stays that rung's: rope's even head size (18 / 2 = 9)
    code, _, err = run_main(*args, "--stage", "rope")
    assert_one_clear_line(code, err, "rotary embeddings need an even head size (n_embd / n_head), got 18 / 2 = 9")
