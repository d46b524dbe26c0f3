"""Imports point one way: kernels <- server <- deployments (bench and tests on top), a Ray replica
(deployments/) never depends on gateway code, and no module imports itself through a circle.
Read from the source with ast, so a lazy import inside a function counts as much as one at the
top; only imports under ``if TYPE_CHECKING:`` (never executed) are left out. docs/architecture.md
draws the layers this test keeps true."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kernels", "server", "deployments", "bench")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> list[str]:
    """Absolute names imported by ``path`` (``from a import b`` gives ``a.b``), TYPE_CHECKING blocks left out."""
    tree = ast.parse(path.read_text(), str(path))
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names += [f"{base}.{a.name}" for a in node.names]
    return names


def _import_graph() -> dict[str, set[str]]:
    """Module -> the first-party modules it imports (a name resolves to its longest module prefix)."""
    paths = {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
             if "gen" not in p.relative_to(ROOT).parts}

    def resolve(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in paths.items():
        graph[module] = {r for n in _runtime_imports(path) if (r := resolve(n)) and r != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("kernels", ("server", "deployments", "bench", "tests")),
        ("server", ("deployments", "bench", "tests")),
        ("deployments", ("server.gateway", "bench", "tests")),
    ],
)
def test_imports_point_one_way(package, forbidden):
    graph = _import_graph()
    bad = [(m, d) for m, deps in graph.items() if m.split(".")[0] == package
           for d in sorted(deps) if any(d == p or d.startswith(p + ".") for p in forbidden)]
    # tests/ is not in the graph (it may import anything): check it by name
    bad += [(str(p.relative_to(ROOT)), n) for p in sorted((ROOT / package).rglob("*.py"))
            for n in _runtime_imports(p) if "tests" in forbidden and n.split(".")[0] == "tests"]
    assert not bad, f"{package}/ must not import {forbidden}: {bad}"


def test_no_import_cycles():
    cycles = _cycles(_import_graph())
    assert not cycles, f"modules importing each other (directly or around a circle): {cycles}"


def test_the_cycle_finder_finds_cycles():
    """The check above must be able to fail: a circle through three modules, and a self-contained tail."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"x": {"y"}, "y": set()}) == []

