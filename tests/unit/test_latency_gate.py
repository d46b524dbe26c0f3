"""The latency gate's logic on scorers of known cost: equal ones pass, a much slower challenger fails, and the
result names the measurement. (The gate's default 1.2x limit is for a quiet machine: `make gate`.)"""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from server.anomaly.gates import latency_gate


def _scorer(seconds: float) -> SimpleNamespace:
    """A stand-in with a ServableModel's ``score``, busy for ``seconds`` per call (not sleeping: a sleeping
    call would not compete for the CPU like a real scoring kernel)."""

    def score(X: np.ndarray) -> np.ndarray:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
        return np.zeros(len(X))

    return SimpleNamespace(score=score)


X = np.ones((8, 3), dtype=np.float32)


def test_the_same_cost_passes():
    same = _scorer(100e-6)
    result = latency_gate(same, same, X, batch=16, calls=40, blocks=3, max_ratio=2.0)
    assert result.passed, result
    assert "median of 3 blocks" in result.gate and result.limit == "<= 2.0x"


def test_a_challenger_four_times_slower_fails():
    result = latency_gate(_scorer(100e-6), _scorer(400e-6), X, batch=16, calls=40, blocks=3, max_ratio=2.0)
    assert not result.passed, result
    ratio = float(result.measured.split("x", 1)[0])
    assert ratio > 2.0, result.measured
