"""Chunked prefill budgeted by time (server/llm/step_budget.py): the prompt tokens a step may take
keep a prefilling step within the stall bound of a decode-only step, never below the minimum chunk,
never above the step budget, and the whole budget when nobody decodes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.llm.step_budget import PrefillBudget
from tests.support.hypothesis_profiles import examples


def simulate(budget: PrefillBudget, decode_s: float, per_token_s: float, steps: int = 50) -> None:
    """Steps of a machine where a step costs decode_s + per_token_s per prompt token."""
    for _ in range(steps):
        budget.observe(decode_s, 0, 4)
        n = budget.tokens(4)
        budget.observe(decode_s + per_token_s * n, n, 4)


@settings(max_examples=examples(100), deadline=None)
@given(decode_ms=st.floats(1, 200), per_token_ms=st.floats(0.05, 20), factor=st.floats(1.2, 6),
       max_tokens=st.integers(1, 2048), min_chunk=st.integers(1, 64))
def test_a_prefilling_step_stays_within_the_stall_bound(decode_ms, per_token_ms, factor, max_tokens, min_chunk):
    b = PrefillBudget(max_tokens, factor, min_chunk)
    simulate(b, decode_ms / 1e3, per_token_ms / 1e3)
    n = b.tokens(4)
    assert min(min_chunk, max_tokens) <= n <= max_tokens
    step = decode_ms + per_token_ms * n
    if n > min(min_chunk, max_tokens):  # the minimum chunk may exceed the bound: a prompt always progresses
        assert step <= factor * decode_ms * (1 + 1e-6)
    if n < max_tokens:  # and the bound is used, not wasted: one more token would break it
        assert decode_ms + per_token_ms * (n + 1) > factor * decode_ms * (1 - 1e-6) or n == min(min_chunk, max_tokens)


def test_nobody_decoding_gets_the_whole_budget_and_unmeasured_costs_too():
    b = PrefillBudget(256, 2.0, 4)
    assert b.tokens(0) == 256 and b.tokens(3) == 256  # nothing measured yet
    simulate(b, 0.010, 0.001)
    assert b.tokens(0) == 256
    assert b.tokens(3) == 10  # (2 - 1) * 10 ms / 1 ms
    simulate(b, 0.010, 0.005)
    assert b.tokens(3) == 4  # 2 would fit the bound; the minimum chunk keeps the prompt moving
    assert PrefillBudget(256, None, 16).tokens(3) == 256  # off


def test_the_budget_follows_a_slower_machine():
    b = PrefillBudget(512, 2.0, 8)
    simulate(b, 0.010, 0.0002)
    fast = b.tokens(4)
    simulate(b, 0.010, 0.001)  # the same decode step, 5x dearer prompt tokens (AVX2, a longer context)
    assert fast == 50 and b.tokens(4) == 10


@pytest.mark.parametrize(("args", "match"), [((0, 2.0, 4), "max_tokens"), ((16, 1.0, 4), "stall_factor"),
                                             ((16, 2.0, 0), "min_chunk")])
def test_bad_settings_are_refused(args, match):
    with pytest.raises(ValueError, match=match):
        PrefillBudget(*args)
