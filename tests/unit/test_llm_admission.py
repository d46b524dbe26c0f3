"""The TTFT estimator on its own: no estimate before a prefill is measured; the queue ahead and a
wait for a slot add up; the moving averages follow the engine's steps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.llm.admission import TtftEstimator


def test_nothing_is_refused_before_the_engine_has_measured_a_prefill():
    est = TtftEstimator()
    assert est.expected_ttft_s(10_000, 10_000, 0, 50, [500]) is None
    est.observe(0.02, 0, 4)  # decode steps alone give no prefill rate
    assert est.expected_ttft_s(10, 0, 1, 0, []) is None


def test_queue_ahead_and_slot_wait_add_up():
    est = TtftEstimator()
    est.observe(1.0, 1000, 0)  # 1 ms per prefilled token
    est.observe(0.05, 0, 4)  # 50 ms per decode step
    assert est.expected_ttft_s(100, 900, 2, 0, [30, 10]) == pytest.approx(1.0)  # a slot is free
    assert est.expected_ttft_s(100, 900, 1, 1, [30, 10]) == pytest.approx(1.0 + 10 * 0.05)  # waits for one


@given(st.lists(st.tuples(st.floats(1e-4, 5.0), st.integers(0, 4096), st.integers(0, 64)), max_size=40),
       st.integers(1, 4096), st.integers(0, 10**6), st.integers(0, 64), st.integers(0, 64),
       st.lists(st.integers(0, 4096), max_size=64))
def test_estimate_is_nonnegative_and_grows_with_the_queue(steps, prompt, queued, free, waiting, remaining):
    est = TtftEstimator()
    for step in steps:
        est.observe(*step)
    base = est.expected_ttft_s(prompt, queued, free, waiting, remaining)
    if base is None:
        assert est.s_per_prefill_token is None
        return
    assert base >= 0
    assert est.expected_ttft_s(prompt, queued + 1000, free, waiting, remaining) >= base
