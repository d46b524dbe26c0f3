"""How many CPUs this process may actually use: its affinity mask and its cgroup's CPU quota.

``os.cpu_count()`` (and the libraries that default to it: torch, OpenMP, numba) reports the host's
cores. In a container limited to 2 CPUs on a 64-core host, or under ``taskset``, each thread pool
then starts one thread per host core, and the pools of one process (the LLM step's team, torch,
the tree kernels, numba, FAISS' OpenMP) oversubscribe the CPUs they share many times over. Every
pool size in stackserve starts from ``usable_cpus()``.

The quota is read from cgroup v2 (``cpu.max``) or v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``)
of the process's own cgroup, rounded up: a quota of 1.5 CPUs still runs two threads usefully.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_cgroup_dirs(root: Path) -> list[Path]:
    """The directories that hold this process's CPU controller files, v2 then v1."""
    dirs: list[Path] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return [root, root / "cpu", root / "cpu,cpuacct"]
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if controllers == "":  # v2 unified hierarchy
            dirs.append(root / rel)
        elif "cpu" in controllers.split(","):
            for name in (controllers, "cpu", "cpu,cpuacct"):
                dirs.append(root / name / rel)
    dirs += [root, root / "cpu", root / "cpu,cpuacct"]
    return dirs


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs the cgroup quota allows (e.g. 1.5), or None when there is no quota."""
    for d in _own_cgroup_dirs(root):
        try:
            v2 = (d / "cpu.max").read_text().split()
        except OSError:
            v2 = None
        if v2 and v2[0] != "max" and len(v2) == 2 and int(v2[1]) > 0:
            return int(v2[0]) / int(v2[1])
        if v2:
            return None
        try:
            quota = int((d / "cpu.cfs_quota_us").read_text())
            period = int((d / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return quota / period if quota > 0 and period > 0 else None
    return None


def affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def usable_cpus() -> int:
    """``STACKSERVE_CPUS`` if set, else min(affinity, ceil(cgroup quota)), at least 1."""
    env = os.environ.get("STACKSERVE_CPUS")
    if env:
        return max(1, int(env))
    n = affinity_cpus()
    quota = cgroup_cpu_quota()
    if quota is not None:
        n = min(n, math.ceil(quota))
    return max(1, n)
