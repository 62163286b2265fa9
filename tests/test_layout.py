"""The house keeps its floors: runner.py is the command line only, the core never imports a stage or
the command line, the benchmark never imports the command line, and no function or class in runner.py,
common/ and bench/ outgrows a reader.

bench/ cannot keep the core's other floor: it measures the stages, so it imports them."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = sorted((ROOT / "common").glob("*.py"))
BENCH = sorted((ROOT / "bench").glob("*.py"))
# runner.py: 250 lines grew to 300 when it gained the studies (--study, --sweep) and --attention: argument
# definitions and one dispatch line each; what they do lives in common/.
MAX_FUNCTION_LINES, MAX_CLASS_LINES, MAX_RUNNER_LINES = 80, 200, 300


def _definitions(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node, node.end_lineno - node.lineno + 1


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_runner_is_the_command_line_only():
    lines = len((ROOT / "runner.py").read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_RUNNER_LINES, f"runner.py has {lines} lines"


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()  # common/ and bench/ both have an __init__.py


@pytest.mark.parametrize("path", [ROOT / "runner.py", *CORE, *BENCH], ids=_relative)
def test_no_function_or_class_outgrows_a_reader(path):
    too_long = [f"{node.name} ({length} lines)" for node, length in _definitions(path)
                if length > (MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES)]
    assert not too_long, f"{_relative(path)}: {', '.join(too_long)}"


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_the_core_imports_neither_a_stage_nor_the_command_line(path):
    upward = {m for m in _imported_modules(path) if m in ("runner", "stages") or m.startswith(("stages.", "bench"))}
    assert not upward, f"common/{path.name} imports {sorted(upward)}"


@pytest.mark.parametrize("path", BENCH, ids=lambda p: p.name)
def test_the_bench_does_not_import_the_command_line(path):
    upward = {m for m in _imported_modules(path) if m == "runner"}
    assert not upward, f"bench/{path.name} imports {sorted(upward)}"


def test_only_ci_names_the_folder_beside_the_checkout():
    """The product finds the corpus as a user's machine does ($GPT_LADDER_DATA, --data, the cache, the verified
    download): only .ci/run names CI's copy in the folder beside the checkout (issue 24)."""
    name = "shared"  # spelled out here only as a pattern, so that this file does not name the folder itself
    beside = re.compile(rf"\.\./{name}\b|parent\s*/\s*[\"']{name}[\"']|{name.upper()}_CORPUS")
    product = [ROOT / "Makefile", ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "runner.py",
               ROOT / "requirements.txt", *sorted((ROOT / "common").glob("*.py")), *sorted((ROOT / "stages").glob("*.py")),
               *sorted((ROOT / "tests").glob("*.py"))]
    naming = [_relative(path) for path in product if beside.search(path.read_text(encoding="utf-8"))]
    assert not naming, f"{', '.join(naming)} name CI's corpus beside the checkout: only .ci/run may (it exports " \
                       f"GPT_LADDER_DATA)"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "export GPT_LADDER_DATA=" in ci and f"{name}/data/tinyshakespeare.txt" in ci
