"""A bounded soak on the session's server (loopback only, stops by itself): steady mixed load for
``SOAK_S`` seconds (anomaly Score from 4 clients, one LLM stream at a time), then every process of
the server (the gateway and the Ray processes of its private head) must have grown by less than
``MAX_GROWTH_MB`` of resident memory since the warm-up, and no call may have failed."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import psutil
import pytest

from server.client import AnomalyClient, LLMClient
from tests.integration.conftest import server_processes
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
SOAK_S = float(os.environ.get("STACKSERVE_SOAK_S", "30"))
WARMUP_S = 10.0
SOAK_TIMEOUT_S = int(SOAK_S + WARMUP_S + 180)  # the soak, its warm-up, the first calls and the checks
MAX_GROWTH_MB = 64.0


def rss_by_pid(procs: list[psutil.Process]) -> dict[int, tuple[str, float]]:
    out = {}
    for p in procs:
        try:
            out[p.pid] = (" ".join(p.cmdline()[:3])[:80], p.memory_info().rss / 2**20)
        except psutil.Error:
            continue
    return out


@pytest.mark.timeout(SOAK_TIMEOUT_S)
def test_steady_load_holds_memory_and_errors(server):
    stop = threading.Event()
    counts = {"score": 0, "llm": 0}
    errors: list[str] = []

    def anomaly() -> None:
        X = np.random.default_rng(1).normal(size=(64, 9)).astype(np.float32)
        with AnomalyClient(server.address) as c:
            while not stop.is_set():
                try:
                    c.score(X, model="shuttle-rf", timeout=30)
                    counts["score"] += 1
                except Exception as exc:
                    errors.append(f"score: {exc}")
                time.sleep(0.005)  # workload pacing, not synchronisation

    def llm() -> None:
        with LLMClient(server.address) as c:
            while not stop.is_set():
                try:
                    list(c.generate("Write a word:", max_tokens=8, temperature=0.7, timeout=60))
                    counts["llm"] += 1
                except Exception as exc:
                    errors.append(f"llm: {exc}")

    threads = [threading.Thread(target=anomaly, daemon=True) for _ in range(4)]
    threads.append(threading.Thread(target=llm, daemon=True))
    for t in threads:
        t.start()
    try:
        # load is flowing (or failing: the asserts below report the errors) before the warm-up counts
        wait_until(lambda: errors or (counts["score"] > 0 and counts["llm"] > 0), 120,
                   "a first score call and LLM stream", interval=0.1)
        time.sleep(WARMUP_S)  # a duration, not synchronisation: the server settles under load before the baseline
        before = rss_by_pid(server_processes(server))
        time.sleep(SOAK_S)  # the soak itself: a duration, not synchronisation
        after = rss_by_pid(server_processes(server))
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    growth = {pid: (name, after[pid][1] - mb) for pid, (name, mb) in before.items() if pid in after}
    worst = max(growth.values(), key=lambda g: g[1])
    print(json.dumps({"soak_s": SOAK_S, "processes": len(growth), "score_calls": counts["score"],
                      "llm_streams": counts["llm"], "errors": len(errors),
                      "worst_growth_mb": round(worst[1], 1), "worst_process": worst[0]}))
    assert counts["score"] > 0 and counts["llm"] > 0
    assert not errors, errors[:5]
    assert all(mb < MAX_GROWTH_MB for _, mb in growth.values()), sorted(growth.values(), key=lambda g: -g[1])[:5]
