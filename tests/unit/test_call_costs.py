"""The cost of one call into the scorers by its size: the unit relative admission counts in."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.batching.call_costs import DRIFT, CallCosts


def test_nothing_seen_means_no_estimate():
    c = CallCosts()
    assert not c
    assert c.seconds(10) is None
    c.observe(0, 1.0)
    c.observe(5, math.nan)
    c.observe(5, -1.0)
    assert not c  # empty calls and broken timings teach nothing


def test_fixed_part_dominates_small_calls_rows_dominate_large_ones():
    c = CallCosts()
    c.observe(1, 0.003)  # a 1-row call: all fixed part
    c.observe(4096, 0.010)
    assert c.seconds(1) == pytest.approx(0.003)
    assert c.seconds(64) == pytest.approx(0.003 + 63 / 4095 * 0.007)  # between classes: interpolated
    assert c.seconds(8192) == pytest.approx(0.020)  # beyond the largest: in proportion to rows
    assert c.seconds(0) == 0.0


def test_the_fastest_recent_time_counts_and_drifts_up_slowly():
    c = CallCosts()
    c.observe(100, 0.010)
    c.observe(100, 0.050)  # one slow call (overload) does not stretch the unloaded estimate
    assert c.seconds(100) == pytest.approx(0.010 * DRIFT)
    for _ in range(2000):
        c.observe(100, 0.020)  # the machine got slower for good: followed, slowly
    assert c.seconds(100) == pytest.approx(0.020)


@given(st.lists(st.tuples(st.integers(1, 100_000), st.floats(1e-6, 10.0)), min_size=1, max_size=50),
       st.integers(1, 200_000), st.integers(1, 200_000))
def test_a_larger_call_never_costs_less(calls, a, b):
    c = CallCosts()
    for rows, seconds in calls:
        c.observe(rows, seconds)
    lo, hi = sorted((a, b))
    assert 0 < c.seconds(lo) <= c.seconds(hi)
