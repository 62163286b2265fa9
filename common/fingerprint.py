"""The code fingerprint: a hash of the code that decides a run's numbers, kept in its key and run.json.

A run is reused only while its stage's fingerprint is unchanged. The fingerprint covers the core's
training, data and configuration files and the stage's own file with every stage file it imports,
directly or through another (the rungs it builds on), ignoring comments and docstrings. A new rung,
or a change to one, so leaves the runs of the rungs below it and of the other ladder current: only
the stages that import the changed file retrain.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES_DIR = ROOT / "stages"
CORE_FILES = tuple(ROOT / "common" / name for name in ("train.py", "data.py", "config.py"))


def code_text(path: Path) -> str:
    """A file's syntax tree as text, without docstrings: what the code does, not what it says."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def imported_stage_files(path: Path) -> list[Path]:
    """`path` and every file of stages/ it imports, directly or through another."""
    found: set[Path] = set()
    todo = [path]
    while todo:
        current = todo.pop()
        if current in found:
            continue
        found.add(current)
        for node in ast.walk(ast.parse(current.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or node.level):
                source = ("stages" + (f".{node.module}" if node.module else "")) if node.level else node.module
                names = [source] + [f"{source}.{alias.name}" for alias in node.names]  # `from .rope`: stages.rope
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] != "stages":
                    continue
                module = STAGES_DIR / f"{parts[1]}.py" if len(parts) > 1 else None
                todo.append(module if module is not None and module.exists() else STAGES_DIR / "__init__.py")
    return sorted(found)


def code_fingerprint(path: Path) -> str:
    """The fingerprint of the stage file at `path`: of it, every stage file it imports, and the core's files."""
    digest = hashlib.sha256()
    for file in imported_stage_files(path.resolve()) + list(CORE_FILES):
        digest.update(file.name.encode() + code_text(file).encode())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def current_code(stage_name: str) -> str | None:
    """This checkout's fingerprint of the stage named so (its file stages/<name>.py), None for no such file."""
    path = STAGES_DIR / f"{stage_name}.py"
    return code_fingerprint(path) if path.exists() else None
