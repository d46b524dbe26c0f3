"""The harness's PNG plots (matplotlib's Agg backend: CI machines have no display).

Each function takes the run's cells, draws one figure and returns the file name it wrote, or None
when the run had no cells of that kind (a ``--workloads`` selection), so the page lists only what
exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

Cell = dict[str, Any]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _targets(cells: Sequence[Cell]) -> list[str]:
    return list(dict.fromkeys(c["target"] for c in cells))


def _save(fig: Any, out_dir: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=110)
    _pyplot().close(fig)
    return name


def open_loop_latency(cells: Sequence[Cell], workload: str, panels: Sequence[tuple[str, str]], out_dir: Path,
                      name: str) -> str | None:
    """p50 and p95 against the offered rate: where the curve turns up is the capacity at that SLO.
    ``panels``: (metric prefix, title), e.g. ("", "latency") reads p50_ms/p95_ms."""
    rows = [c for c in cells if c["workload"] == workload and c["mode"] == "open"]
    if not rows:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (prefix, title) in zip(axes[0], panels, strict=True):
        for target in _targets(rows):
            rs = sorted((c for c in rows if c["target"] == target), key=lambda c: c["rate"])
            x = [c["rate"] for c in rs]
            ax.plot(x, [c[f"{prefix}p50_ms"] for c in rs], "-o", label=f"{target} p50")
            ax.plot(x, [c[f"{prefix}p95_ms"] for c in rs], "--s", label=f"{target} p95")
        ax.set(xlabel="offered load (requests/s, Poisson)", ylabel="ms (from the scheduled send)",
               title=f"{workload} open loop: {title}", yscale="log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, out_dir, name)


def closed_loop_throughput(cells: Sequence[Cell], workload: str, metric: str, ylabel: str, out_dir: Path,
                           name: str) -> str | None:
    """Throughput against concurrency, one line per target: the peers' lines side by side."""
    rows = [c for c in cells if c["workload"] == workload and c["mode"] == "closed"]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for target in _targets(rows):
        rs = sorted((c for c in rows if c["target"] == target), key=lambda c: c["concurrency"])
        ax.plot([c["concurrency"] for c in rs], [c[metric] for c in rs], "-o", label=target)
    ax.set(xlabel="concurrency (requests in flight)", ylabel=ylabel, title=f"{workload} closed loop", yscale="log")
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_dir, name)


def _cdf(ax: Any, values: Sequence[float], label: str) -> None:
    a = np.sort(np.asarray(values, dtype=float))
    a = a[np.isfinite(a)]
    if a.size:
        ax.plot(a, np.arange(1, a.size + 1) / a.size, label=label)


def llm_cdfs(cells: Sequence[Cell], out_dir: Path, name: str) -> str | None:
    """TTFT (per request) and inter-token gaps (every gap): the tails the p95 columns summarize."""
    rows = [c for c in cells if c["workload"] == "llm"]
    if not rows:
        return None
    plt = _pyplot()
    fig, (a_ttft, a_itl) = plt.subplots(1, 2, figsize=(11, 4))
    for c in rows:
        label = f"{c['target']}, {c['load']}"
        _cdf(a_ttft, c["ttft_ms"], label)
        _cdf(a_itl, c["itl_ms"], label)
    a_ttft.set(xlabel="TTFT (ms)", ylabel="share of requests", title="time to first token", xscale="log")
    a_itl.set(xlabel="inter-token gap (ms)", ylabel="share of gaps", title="inter-token latency", xscale="log")
    for ax in (a_ttft, a_itl):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, out_dir, name)
