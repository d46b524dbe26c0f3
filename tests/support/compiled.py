"""The compiled kernels the suite must not run without, and which ISA paths this CPU takes.

Locally a missing extension skips the tests that need it (a developer may not have built it yet);
under ``CI=true`` it fails the run instead: otherwise CI stays green on a fallback backend (the
integration server on ``torch-fp32``, the tree kernels on Numba) that users of a built wheel never get.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

#: Every extension ``setup.py`` builds, and the JIT package the Numba backends need.
COMPILED = {
    "kernels.cpp._llm_step": "C++ LLM step (pybind11, OpenMP)",
    "kernels.cpp._tree_ensemble": "C++ tree ensemble (pybind11)",
    "kernels.cython._tree_ensemble": "Cython tree ensemble",
    "numba": "Numba (JIT tree, stream-feature and drift kernels)",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def import_errors() -> dict[str, str]:
    """``{module: why it failed to import}`` for every compiled module that is missing here."""
    errors = {}
    for module in COMPILED:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            errors[module] = f"{type(exc).__name__}: {exc}"
    return errors


def require(module: str) -> None:
    """Skip the calling test (fail it under ``CI=true``) when ``module`` does not import."""
    if module not in COMPILED:
        raise KeyError(f"{module!r} is not a compiled module of this project ({sorted(COMPILED)})")
    errors = import_errors()
    if module in errors:
        message = f"{module} ({COMPILED[module]}) is not built: {errors[module]}"
        if in_ci():
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(f"{message} (python setup.py build_ext --inplace)")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def isa_paths() -> dict[str, bool]:
    """Which of the C++ step's SIMD paths this CPU can run (the kernel picks among them at run time)."""
    flags = cpu_flags()
    return {
        "avx2": {"avx2", "fma"} <= flags,
        "avx512-vnni": {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"} <= flags,
        "amx-int8": {"amx_tile", "amx_int8"} <= flags,
    }


def report_lines() -> list[str]:
    """The header every run prints: the CPU, the ISA paths it allows, the path the step takes, the builds."""
    paths = isa_paths()
    lines = [f"cpu: {cpu_model()} ({os.cpu_count()} logical CPUs)",
             "isa paths: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in paths.items())]
    errors = import_errors()
    if "kernels.cpp._llm_step" not in errors:
        from kernels import llm_step

        lines.append(f"llm_step runs: {llm_step.isa()}")
    lines.append("compiled: " + ", ".join(f"{m}{' MISSING' if m in errors else ''}" for m in COMPILED))
    return lines
