"""The TTFT estimator on its own: no estimate before a prefill is measured; the queue ahead and a
requests ahead are replayed on the KV slots; the moving averages follow the engine's steps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.llm.admission import TtftEstimator


def test_nothing_is_refused_before_the_engine_has_measured_a_prefill():
    est = TtftEstimator()
    assert est.expected_ttft_s(10_000, [(10_000, 64)] * 50, 0, [500]) is None
    est.observe(0.02, 0, 4)  # decode steps alone give no prefill rate
    assert est.expected_ttft_s(10, [], 1, []) is None


def test_queue_ahead_is_replayed_on_the_slots():
    est = TtftEstimator()
    est.observe(1.0, 1000, 0)  # 1 ms per prefilled token
    est.observe(0.05, 0, 4)  # 50 ms per decode step
    # a slot is free: the prompt ahead, then this one
    assert est.expected_ttft_s(100, [(900, 8)], 2, [30, 10]) == pytest.approx(1.0)
    # one free slot, taken by the request ahead: this one waits for the sequence with 10 steps left
    assert est.expected_ttft_s(100, [(100, 8)], 1, [30, 10]) == pytest.approx(10 * 0.05 + 0.1)
    # no free slot and three requests of 20 tokens ahead on 2 slots: the third ahead takes the slot
    # the first ahead frees (0.5 s + 0.1 prefill + 20 steps), this one the slot the second frees
    ahead = [(100, 20)] * 3
    first = 10 * 0.05 + 0.1  # the 10-step sequence frees its slot, the first ahead prefills
    second = max(first, 30 * 0.05) + 0.1
    third = max(second, first + 20 * 0.05) + 0.1
    assert est.expected_ttft_s(100, ahead, 0, [30, 10]) == pytest.approx(max(third, second + 20 * 0.05) + 0.1)


def test_a_deep_queue_on_few_slots_is_expected_to_wait_for_rounds_of_decoding():
    est = TtftEstimator()
    est.observe(0.01, 100, 0)
    est.observe(0.04, 0, 16)  # 40 ms per step
    # 64 waiting for 16 slots, 32 tokens each: four rounds of 32 steps before this one starts
    t = est.expected_ttft_s(10, [(10, 32)] * 64, 0, [32] * 16)
    assert t == pytest.approx(5 * 32 * 0.04, rel=0.1)


@given(st.lists(st.tuples(st.floats(1e-4, 5.0), st.integers(0, 4096), st.integers(0, 64)), max_size=40),
       st.integers(1, 4096), st.lists(st.tuples(st.integers(0, 4096), st.integers(1, 512)), max_size=64),
       st.integers(0, 64), st.lists(st.integers(0, 4096), max_size=64))
def test_estimate_is_nonnegative_and_grows_with_the_queue(steps, prompt, waiting, free, remaining):
    est = TtftEstimator()
    for step in steps:
        est.observe(*step)
    base = est.expected_ttft_s(prompt, waiting, free, remaining)
    if base is None:
        assert est.s_per_prefill_token is None
        return
    assert base >= 0
    assert est.expected_ttft_s(prompt, [*waiting, (1000, 64)], free, remaining) >= base
    assert est.expected_ttft_s(prompt, waiting, free + 1, remaining) <= base + 1e-9


def test_each_class_gets_its_own_limit_and_only_once_the_engine_is_full():
    from server.config import LLMConfig
    from server.llm.admission import limit_s

    cfg = LLMConfig()  # admission on: interactive 2x, rag 3x, floor 0.25 s, beyond the batch only
    assert limit_s(cfg, "interactive", 1.0, busy=True) == 2.0
    assert limit_s(cfg, "rag", 1.0, busy=True) == 3.0  # a long RAG prompt is not held to a chat's limit
    assert limit_s(cfg, "interactive", 0.1, busy=True) == 0.25  # the floor
    assert limit_s(cfg, "batch", 1.0, busy=True) is None  # priority > 0: never refused by expected TTFT
    assert limit_s(cfg, "interactive", 1.0, busy=False) is None  # a client within max_num_seqs queues
    assert limit_s(cfg, "interactive", None, busy=True) is None  # nothing measured yet: admit
    capped = cfg.model_copy(update={"max_expected_ttft_s": 1.5})
    assert limit_s(capped, "rag", 1.0, busy=True) == 1.5 and limit_s(capped, "interactive", 1.0, busy=False) == 1.5
    off = cfg.model_copy(update={"admission": cfg.admission.model_copy(update={"enabled": False})})
    assert limit_s(off, "interactive", 1.0, busy=True) is None


def test_the_class_comes_from_the_request():
    from server.llm.params import SamplingParams

    assert SamplingParams().admission_class == "interactive"
    assert SamplingParams(priority=2).admission_class == "batch"
    assert SamplingParams(request_class="rag").admission_class == "rag"


def test_an_idle_engine_admits_whatever_its_estimate_says():
    """A stale estimate (a cold first prefill) must not refuse for ever: an idle engine starts the
    request at once and its step measures the speed again."""
    from server.config import LLMConfig
    from server.llm.admission import refuse_if_late
    from server.llm.errors import WaitingQueueFullError

    est = TtftEstimator()
    est.observe(1.1, 30, 0)  # a cold first prefill: 37 ms per token
    capped = LLMConfig().model_copy(update={"max_expected_ttft_s": 1.0})
    refuse_if_late(est, capped, "interactive", 30, [], [], free_slots=4)  # idle: admitted

    class Running:  # one sequence decoding, its slot busy for 500 more steps
        params = type("P", (), {"max_tokens": 600})()
        output_ids = [0] * 100

    with pytest.raises(WaitingQueueFullError, match=r"over this interactive request's limit of 1\.00 s"):
        refuse_if_late(est, capped, "interactive", 30, [], [Running()], free_slots=0)
