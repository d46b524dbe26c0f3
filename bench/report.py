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
    meta = {"host": platform.node(), "python": platform.python_version(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path.write_text(json.dumps({"meta": meta, **payload}, indent=2, default=float))
    return path


def write_text(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(text)
    return path


def machine() -> dict[str, Any]:
    """CPU model, usable CPUs, Python and NumPy versions, load average: context for every result."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "loadavg_start": os.getloadavg(),
    }
