"""Imports run one way: cli -> registry/search -> tracking/models/data -> space -> leaves.

Read from the source (every import statement, lazy ones included), so a new import against the
flow fails here with the module and the line, before it becomes an import circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tunetrack"
LAYER = {"errors": 0, "names": 0, "space": 1, "data": 2, "models": 2, "tracking": 2,
         "search": 3, "registry": 3, "cli": 4,
         "serving": 4}  # serving.py: a shim so models pickled by tunetrack 0.1 still load
# Within a layer nothing imports a sibling, except where named here.
SIBLINGS: set[tuple[str, str]] = set()


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, tunetrack sub-package or module) for every absolute import of tunetrack."""
    found: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "tunetrack" and len(parts) > 1 and parts[1] in LAYER:
                found.add((node.lineno, parts[1]))
    return sorted(found)


def _package(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    return rel.parts[0]


def test_every_module_belongs_to_a_layer():
    packages = {_package(p) for p in SRC.rglob("*.py")} - {"__init__"}
    assert packages <= set(LAYER), packages - set(LAYER)


def test_imports_run_one_way():
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        here = _package(path)
        if here == "__init__":  # the top-level package re-exports lazily from every layer
            continue
        for line, there in _imports(path):
            if there == here:
                continue
            upward = LAYER[there] > LAYER[here]
            sideways = LAYER[there] == LAYER[here] and (here, there) not in SIBLINGS
            if upward or sideways:
                wrong.append(f"{path.relative_to(SRC)}:{line}: {here} (layer {LAYER[here]}) "
                             f"imports {there} (layer {LAYER[there]})")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_lazy_imports(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from tunetrack.search import run_search\n")
    assert _imports(sample) == [(2, "search")]


def test_no_module_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
