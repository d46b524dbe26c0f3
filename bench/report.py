"""Shared output for benchmarks: llama-bench style markdown, JSON with every sample, PNG plots."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"


def spread(samples: list[float] | np.ndarray) -> tuple[float, float]:
    """Median and half the inter-quartile range: robust on a noisy shared machine."""
    a = np.asarray(samples, dtype=float)
    if a.size == 0:
        return float("nan"), float("nan")
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return float(med), float((q3 - q1) / 2)


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    meta = {
        "host": platform.node(),
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine(),
    }
    path.write_text(json.dumps({"meta": meta, **payload}, indent=2, default=float))
    return path


def write_text(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(text)
    return path


#: Instruction-set flags (as /proc/cpuinfo spells them) that decide which kernels run and how fast.
ISA_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
)  # fmt: skip


def cpu_info() -> tuple[str, set[str]]:
    """CPU model name and the full flag set of the first CPU in /proc/cpuinfo (empty off Linux)."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name":
                model = value.strip()
            elif key == "flags":
                flags = set(value.split())
            if key == "processor" and flags:  # the first CPU is enough
                break
    except OSError:
        pass
    return model, flags


def machine() -> dict[str, Any]:
    """CPU model, its ISA flags, usable CPUs, Python and NumPy versions, load average: context for every result.

    The machine's CPU changes between sessions (AMD without AVX-512, Zen 4 with AVX-512, Intel with
    AMX), so every benchmark stores and prints this; compare only ratios measured in one run.
    """
    cpu, flags = cpu_info()
    return {
        "cpu": cpu,
        "isa": [f for f in ISA_FLAGS if f in flags],
        "isa_missing": [f for f in ISA_FLAGS if f not in flags],
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "loadavg_start": os.getloadavg(),
    }


def machine_line(info: dict[str, Any] | None = None) -> str:
    """One printable line: CPU model, usable CPUs, ISA flags present and absent."""
    m = info or machine()
    return (
        f"CPU: {m['cpu']} ({m['cpus_available']} usable CPUs); ISA: {' '.join(m['isa']) or 'none of the listed'}"
        f"; absent: {' '.join(m['isa_missing']) or '-'}"
    )
