"""The code fingerprint of a stage covers the core and the stage files it builds on, and nothing else.

A change to one rung must make stale the runs of that rung and of every rung importing it, and leave
every other run (the rungs below it, the other ladder) reusable: otherwise adding or mending a modern
rung retrains the lecture ladder, or a change goes unnoticed and an old run is reused.
"""
import shutil

import pytest

import common.fingerprint as fingerprint
from common.fingerprint import code_fingerprint, current_code, imported_stage_files
from common.results import experiment_of
from stages import ALL_STAGE_NAMES, MODERN_LADDER, MODERN_LEFT_OUT, STAGE_NAMES, STAGES


def names(stage: str) -> set[str]:
    return {path.stem for path in imported_stage_files(fingerprint.STAGES_DIR / f"{stage}.py")}


def test_a_stage_covers_the_rungs_it_builds_on_and_no_other():
    assert names("bigram") == {"bigram"}
    assert names("layernorm") == {"bigram", "averaging", "single_head", "multi_head", "mlp", "residual", "layernorm"}
    assert names("scaled") >= {"scaled", "dropout"}
    assert names("qk_norm") >= {"layernorm", "gelu", "rope", "muon", "qk_norm"}
    for stage in STAGE_NAMES:  # the lecture ladder builds on nothing of the modern one
        assert not names(stage) & set(MODERN_LADDER[1:] + MODERN_LEFT_OUT), stage
    for stage in MODERN_LEFT_OUT:  # each left-out piece builds on the top rung, not on another piece
        assert names(stage) & set(MODERN_LEFT_OUT) == {stage}
    assert all("__init__" not in names(stage) for stage in ALL_STAGE_NAMES)  # the registry decides no numbers


@pytest.fixture()
def stage_copy(tmp_path, monkeypatch):
    """A copy of stages/ that the fingerprint reads instead of the real one."""
    copy = tmp_path / "stages"
    shutil.copytree(fingerprint.STAGES_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "STAGES_DIR", copy)
    return copy


def fingerprints(folder) -> dict[str, str]:
    return {stage: code_fingerprint(folder / f"{stage}.py") for stage in ALL_STAGE_NAMES}


def test_a_code_change_reaches_exactly_the_stages_that_import_it(stage_copy):
    before = fingerprints(stage_copy)
    assert len(set(before.values())) == len(ALL_STAGE_NAMES)  # each stage its own
    rope = stage_copy / "rope.py"
    rope.write_text(rope.read_text(encoding="utf-8").replace("ROPE_BASE = 10_000.0", "ROPE_BASE = 500.0"),
                    encoding="utf-8")
    after = fingerprints(stage_copy)
    changed = {stage for stage in ALL_STAGE_NAMES if after[stage] != before[stage]}
    assert changed == {"rope", "muon", "qk_norm", *MODERN_LEFT_OUT}


def test_comments_and_docstrings_change_no_fingerprint(stage_copy):
    before = fingerprints(stage_copy)
    residual = stage_copy / "residual.py"
    text = residual.read_text(encoding="utf-8")
    residual.write_text(text.replace('"""', '"""A new first line of the docstring.\n', 1) + "# a comment\n",
                        encoding="utf-8")
    assert fingerprints(stage_copy) == before


def test_runs_of_current_code_are_one_experiment_across_stages():
    """Runs of different stages carry different fingerprints; each of this checkout's own stage is one
    experiment with the others (the ladder table shows them together), another code is not."""
    def record(stage, code):
        return {"stage": stage, "code": code, "settings": {}, "model_config": {"vocab_size": 65}}
    current = {stage: current_code(stage) for stage in ("layernorm", "gelu")}
    assert experiment_of(record("layernorm", current["layernorm"])) == experiment_of(record("gelu", current["gelu"]))
    assert experiment_of(record("gelu", current["layernorm"])) != experiment_of(record("gelu", current["gelu"]))


def test_a_relative_import_between_stage_files_counts_as_the_absolute_one(stage_copy):
    """`from .rope import ...` in a stage file brings stages/rope.py into its fingerprint as `from stages.rope
    import ...` does."""
    before = imported_stage_files(stage_copy / "qk_norm.py")
    assert len(before) > 1
    qk_norm = stage_copy / "qk_norm.py"
    text = qk_norm.read_text(encoding="utf-8")
    assert "from stages." in text
    qk_norm.write_text(text.replace("from stages.", "from ."), encoding="utf-8")  # every stage import relative
    assert imported_stage_files(stage_copy / "qk_norm.py") == before
