"""The CPUs a process may use (affinity, cgroup quota) and the thread budget built on them."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from kernels.cpu_budget import cgroup_cpu_quota, usable_cpus
from server.thread_budget import apply_environment, llm_threads, plan
from tests.support.paths import ROOT


@pytest.mark.parametrize(("files", "expected"), [
    ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2 with a quota
    ({"cpu.max": "max 100000\n"}, None),  # v2, no quota
    ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),  # v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1, no quota
    ({}, None),  # no controller files at all
])
def test_the_cgroup_quota_is_read_from_v1_and_v2_files(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_quota(tmp_path) == expected


def test_the_budget_never_exceeds_the_usable_cpus():
    assert plan(cpus=1).as_dict() == {"cpus": 1, "llm_step": 1, "torch": 1, "tree": 1, "numba": 1, "faiss": 1,
                                      "openmp": 1}
    assert plan(llm_threads=8, cpus=2).llm_step == 2  # a configured team larger than the CPUs is capped
    assert plan(llm_threads=1, cpus=4).llm_step == 1
    assert llm_threads(3) == 3  # an explicit llm.num_threads is the user's


def test_stackserve_cpus_overrides_and_the_budget_switches_off(monkeypatch):
    monkeypatch.setenv("STACKSERVE_CPUS", "3")
    assert usable_cpus() == 3
    monkeypatch.setenv("STACKSERVE_THREAD_BUDGET", "0")
    assert apply_environment() is None
    assert llm_threads(0) == 2  # the old fixed default, for before/after measurements


def test_the_environment_is_set_without_overriding_the_users(monkeypatch):
    # a separate mapping: this process's numba has launched its threads, and a NUMBA_NUM_THREADS left
    # in os.environ made every later numba call raise
    monkeypatch.delenv("STACKSERVE_THREAD_BUDGET", raising=False)
    monkeypatch.setenv("STACKSERVE_CPUS", "1")
    env = {"MKL_NUM_THREADS": "7"}
    assert apply_environment(env=env) is not None
    assert env["OMP_NUM_THREADS"] == "1" and env["NUMBA_NUM_THREADS"] == "1"
    assert env["STACKSERVE_KERNEL_THREADS"] == "1"
    assert env["MKL_NUM_THREADS"] == "7"


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) is not installed")
def test_a_process_pinned_to_one_cpu_plans_for_one():
    code = "from kernels.cpu_budget import usable_cpus; from server.thread_budget import plan; " \
           "print(usable_cpus(), plan().llm_step)"
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1"]
