"""The house keeps its floors: runner.py is the command line only, the core never imports a stage or
the command line, and no function or class in runner.py and common/ outgrows a reader."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = sorted((ROOT / "common").glob("*.py"))
MAX_FUNCTION_LINES, MAX_CLASS_LINES, MAX_RUNNER_LINES = 80, 200, 250


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


@pytest.mark.parametrize("path", [ROOT / "runner.py", *CORE], ids=lambda p: p.name)
def test_no_function_or_class_outgrows_a_reader(path):
    too_long = [f"{node.name} ({length} lines)" for node, length in _definitions(path)
                if length > (MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES)]
    assert not too_long, f"{path.name}: {', '.join(too_long)}"


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_the_core_imports_neither_a_stage_nor_the_command_line(path):
    upward = {m for m in _imported_modules(path) if m in ("runner", "stages") or m.startswith(("stages.", "bench"))}
    assert not upward, f"common/{path.name} imports {sorted(upward)}"
