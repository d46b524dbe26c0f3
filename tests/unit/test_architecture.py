"""Imports point one way: kernels <- server <- deployments (bench and tests on top), and a Ray
replica (deployments/) never depends on gateway code. Read from the source with ast, so a lazy
import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(package: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(ROOT)), a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((str(path.relative_to(ROOT)), node.module))
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
    bad = [(f, m) for f, m in _imports(package) if any(m == p or m.startswith(p + ".") for p in forbidden)]
    assert not bad, f"{package}/ must not import {forbidden}: {bad}"
