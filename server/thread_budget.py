"""One place that decides how many threads each pool of a stackserve process gets.

A gateway that runs the LLM and the embedder in its own process holds, on top of its event loop:
the LLM step's thread team (C++), torch's intra-op pool (the embedder, the torch backends), the
tree kernels' pool (C++), numba's pool (drift statistics, stream features), FAISS' OpenMP pool,
and our executors (server/executors.py). Left alone, each library sizes itself from the host's
core count (``os.cpu_count()``, /proc/cpuinfo), not from the CPUs this process may use: in a
container with a 2-CPU quota on a 64-core host, or under ``taskset``, every pool starts a thread
per host core and they all spin against each other. Here every size starts from
``kernels.cpu_budget.usable_cpus()`` (affinity and cgroup quota).

``apply_environment`` must run before torch, numba or FAISS are imported (``stackserve serve`` does
it first thing): OpenMP (torch's intra-op pool defaults to ``OMP_NUM_THREADS``, FAISS uses OpenMP)
and numba read their sizes from the environment once; the LLM step's team is sized by
``llm_threads``. ``STACKSERVE_THREAD_BUDGET=0`` turns the budget off, to measure what the libraries'
own defaults do (bench/thread_budget.py).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from dataclasses import asdict, dataclass

from kernels.cpu_budget import usable_cpus

log = logging.getLogger("stackserve.threads")
#: the environment variables OpenMP-based libraries (torch, FAISS, MKL/OpenBLAS) and numba read once
_ENV_POOLS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass(frozen=True)
class ThreadBudget:
    cpus: int  # what this process may use
    llm_step: int  # the LLM step's C++ team (``llm.num_threads``, 0 = cpus)
    torch: int  # torch's intra-op pool
    tree: int  # the tree kernels' pool (large batches)
    numba: int
    faiss: int
    openmp: int  # any other OpenMP/BLAS pool

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def enabled() -> bool:
    return os.environ.get("STACKSERVE_THREAD_BUDGET", "1") not in ("0", "false", "off")


def plan(llm_threads: int = 0, cpus: int | None = None) -> ThreadBudget:
    """Every pool at most the usable CPUs: the pools of one process take turns (a request is scored,
    or embedded, or decoded) far more than they overlap, and a pool larger than the CPUs only adds
    context switches and spinning. ``llm_threads``: ``llm.num_threads`` (0: the usable CPUs)."""
    n = cpus if cpus is not None else usable_cpus()
    return ThreadBudget(cpus=n, llm_step=min(llm_threads, n) if llm_threads > 0 else n, torch=n, tree=n,
                        numba=n, faiss=n, openmp=n)


def llm_threads(configured: int) -> int:
    """Threads for the LLM step: ``configured`` (``llm.num_threads``) when set, else the usable CPUs;
    with the budget off, the old fixed default of 2."""
    if configured > 0:
        return configured
    return plan().llm_step if enabled() else 2


def apply_environment(budget: ThreadBudget | None = None,
                      env: MutableMapping[str, str] | None = None) -> ThreadBudget | None:
    """Set the sizes libraries read once from the environment (``env``: this process's, by default);
    an explicit setting is respected. Returns the budget applied (None when turned off)."""
    if not enabled():
        return None
    env = os.environ if env is None else env
    budget = budget or plan()
    for name in _ENV_POOLS:
        env.setdefault(name, str(budget.numba if name == "NUMBA_NUM_THREADS" else budget.openmp))
    env.setdefault("STACKSERVE_KERNEL_THREADS", str(budget.tree))
    if "numba" in sys.modules or "torch" in sys.modules:
        log.debug("thread budget applied after numba/torch were imported: their defaults may stand")
    return budget
