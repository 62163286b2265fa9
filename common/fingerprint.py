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
import inspect
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
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] != "stages":
                    continue
                module = STAGES_DIR / f"{parts[1]}.py" if len(parts) > 1 else None
                todo.append(module if module is not None and module.exists() else STAGES_DIR / "__init__.py")
    return sorted(found)


def code_fingerprint(stage: type | Path) -> str:
    """The fingerprint of a stage: of its file (or of the file defining its model class)."""
    files = imported_stage_files(Path(stage if isinstance(stage, Path) else inspect.getfile(stage)).resolve())
    digest = hashlib.sha256()
    for path in files + list(CORE_FILES):
        digest.update(path.name.encode() + code_text(path).encode())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def current_code(stage_name: str) -> str | None:
    """This checkout's fingerprint of the stage named so (its file stages/<name>.py), None for no such file."""
    path = STAGES_DIR / f"{stage_name}.py"
    return code_fingerprint(path) if path.exists() else None


def stage_code(name: str, model: type) -> str:
    """The fingerprint a run of the stage `name` carries: of its file stages/<name>.py (as common.results checks a
    saved run against), or of its model's file for a stage that has none."""
    return current_code(name) or code_fingerprint(model)
