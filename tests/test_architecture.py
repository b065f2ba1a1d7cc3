"""The layers on disk are the layers in the import graph (issue 10).

    foundation (units, errors, vocab) < inputs < model < run < analysis < report < api (notebook)

A module imports only from its own layer or below, counting imports inside functions too; the command line
(cli/) sits above the simulator and calibrate/ beside it, below the CLI. No import cycles between modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("simulator", "cli", "calibrate")

LAYERS = {
    "simulator": 0,  # the package docstring only
    "simulator.units": 0,
    "simulator.errors": 0,
    "simulator.vocab": 0,
    "simulator.data": 0,
    "simulator.inputs": 1,
    "simulator.model": 2,
    "simulator.run": 3,
    "simulator.analysis": 4,
    "simulator.report": 5,
    "simulator.api": 6,
    "simulator.notebook": 6,
    "calibrate": 7,
    "cli": 8,
}
CALIBRATE_MAY_IMPORT = ("simulator.units", "simulator.errors", "simulator.vocab", "simulator.inputs", "simulator.model")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


MODULES = all_modules()


def imports_of(name: str, path: Path) -> set[str]:
    """Every costsim module `name` imports, at module level or inside a function, resolved to a module."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t.split(".")[0] in PACKAGES}
    return found - {name}


def layer_of(module: str) -> tuple[str, int]:
    key = max((k for k in LAYERS if module == k or module.startswith(k + ".")), key=len)
    return key, LAYERS[key]


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_nothing_imports_upward(name):
    _, mine = layer_of(name)
    upward = sorted(t for t in GRAPH[name] if layer_of(t)[1] > mine)
    assert not upward, f"{name} (layer {mine}) imports from a higher layer: {upward}"


def test_calibrate_uses_only_inputs_and_the_model():
    offending = {
        name: sorted(t for t in deps if t.startswith("simulator") and not t.startswith(CALIBRATE_MAY_IMPORT))
        for name, deps in GRAPH.items()
        if name.startswith("calibrate")
    }
    assert not {k: v for k, v in offending.items() if v}, offending
    assert not [n for n, deps in GRAPH.items() if n.startswith("calibrate") and any(d.startswith("cli") for d in deps)]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    # A package's __init__ that re-exports its modules is not a cycle of the code's logic; leave those edges out.
    graph = {
        n: {d for d in deps if not (MODULES[d].name == "__init__.py" and n.startswith(d + "."))} for n, deps in GRAPH.items()
    }
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_at_most_ten_modules_flat_in_simulator():
    flat = sorted(p.name for p in (ROOT / "simulator").glob("*.py") if p.name != "__init__.py")
    assert len(flat) <= 10, flat


def test_every_module_belongs_to_a_layer():
    assert all(layer_of(n) for n in MODULES)


def test_only_calibrate_imports_torch():
    """torch is an optional extra: the estimator never imports it; only calibrate/ and the command that runs it
    (cli.calibrate, which checks that torch is installed) do."""
    users = sorted(n for n, p in MODULES.items() if not n.startswith("calibrate") and _imports_torch(p))
    assert users in ([], ["cli.calibrate"])


def _imports_torch(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch" and not node.level:
            return True
    return False
