"""Floors, not tangles: no import cycle among the project's own modules (issue 29).

Every `import` and `from ... import` in a file counts, at the top or inside a function: an import
deferred into a function still makes the two modules lean on each other, it only hides it from the
reader. The graph is drawn between the project's own modules (common.*, bench.*, stages.*, runner);
an edge a -> b means a imports b.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "bench", "stages")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_files() -> dict[str, Path]:
    files = {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).glob("*.py"))}
    files["runner"] = ROOT / "runner.py"
    return files


def imported(path: Path, modules: set[str]) -> set[str]:
    """The project's modules that a file imports, anywhere in it (functions included)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x, from .x import y
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # from common import run: a module
    return {name for name in names if name in modules and name != here}


def import_graph() -> dict[str, set[str]]:
    files = project_files()
    return {name: imported(path, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None (depth-first search, three colours)."""
    state, stack = {}, []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_finder_finds_a_cycle_and_passes_a_chain():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_imports_inside_functions_and_from_forms_count(tmp_path):
    graph = import_graph()
    assert "common.run" in graph["runner"]  # a top-level `from common.run import ...`
    assert "common.report" in graph["runner"]  # imported inside a function


def test_no_import_cycle_among_the_projects_modules():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"
