"""Automatic prefix caching: reused K/V give the answers prefill would have, under concurrency and
eviction, and a stored prefix is only ever served to a prompt that really starts with it."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from server.llm.engine import LLMEngine
from server.llm.kv_cache import SlotKVCache
from server.llm.params import SamplingParams
from server.llm.prefix_cache import PrefixCache
from tests.support.llm_fixtures import engine_config, weights
from tests.support.waiting import wait_until

SYSTEM = "You are a careful assistant. Facts: " + " ".join(f"item {i} costs {i * 3} coins." for i in range(12))
QUESTIONS = [" How much is item 3?", " How much is item 7?", " Which item is cheapest?", " How much is item 3?",
             " Name two items.", " How much is item 11?"]
GREEDY = SamplingParams(temperature=0.0, max_tokens=10)


def _answers(entries: int, concurrent: bool) -> tuple[list[str], int]:
    eng = LLMEngine(engine_config(max_model_len=256, prefix_cache_entries=entries), weights=weights()).start()
    try:
        out: list[str] = [""] * len(QUESTIONS)

        def ask(i: int) -> None:
            out[i] = "".join(c.text for c in eng.generate_blocking(SYSTEM + QUESTIONS[i], GREEDY, timeout_s=120))

        if concurrent:  # several share the engine at once: restores and saves interleave with running slots
            threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(QUESTIONS))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            for i in range(len(QUESTIONS)):
                ask(i)
        return out, eng.prefix_cache.hit_tokens if eng.prefix_cache else 0
    finally:
        eng.shutdown()


def test_cached_prefixes_give_the_answers_of_full_prefill():
    want, _ = _answers(0, concurrent=False)
    sequential, hits = _answers(2, concurrent=False)  # 2 entries for 6 requests: eviction happens
    assert sequential == want and hits > 0
    concurrent, _ = _answers(2, concurrent=True)
    assert concurrent == want


def _cache(entries: int = 2, block: int = 4) -> tuple[SlotKVCache, PrefixCache]:
    cache = SlotKVCache(n_layers=2, n_slots=3, n_kv_heads=1, max_len=32, head_dim=2)
    return cache, PrefixCache(cache, entries, block)


def _fill(cache: SlotKVCache, slot: int, n: int, value: float) -> None:
    cache.k[:, slot, :, :n] = value
    cache.v[:, slot, :, :n] = -value
    cache.lengths[slot] = n


def test_restore_serves_the_longest_full_block_prefix_and_leaves_a_token_to_prefill():
    cache, pc = _cache()
    slot = cache.allocate()
    _fill(cache, slot, 10, 7.0)
    pc.save(list(range(10)), slot)  # full blocks: 8 tokens kept
    cache.free(slot)
    new = cache.allocate()
    assert pc.restore(list(range(8)), new) == 4  # an 8-token prompt: at most 7 may come from the store
    assert pc.restore([*range(6), 99, 98, 97], new) == 4  # diverges inside the second block
    assert pc.restore(list(range(12)), new) == 8
    assert torch.all(cache.k[:, new, :, :8] == 7.0) and torch.all(cache.v[:, new, :, :8] == -7.0)
    assert cache.lengths[new] == 8
    assert pc.restore([5, 4, 3, 2, 1], new) == 0


def test_least_recently_used_entry_is_evicted():
    cache, pc = _cache(entries=2)
    slot = cache.allocate()
    for i, first in enumerate((100, 200, 300)):
        _fill(cache, slot, 4, float(i))
        pc.save([first, 1, 2, 3], slot)
        if first == 200:
            assert pc.restore([100, 1, 2, 3, 9], slot) == 4  # touch 100: 200 is now the oldest
    assert pc.restore([100, 1, 2, 3, 9], slot) == 4
    assert pc.restore([300, 1, 2, 3, 9], slot) == 4
    assert pc.restore([200, 1, 2, 3, 9], slot) == 0


def test_a_hash_collision_is_never_served():
    cache, pc = _cache()
    slot = cache.allocate()
    _fill(cache, slot, 4, 1.0)
    pc.save([1, 2, 3, 4], slot)
    (h, _end), = list(pc._hashes([9, 9, 9, 9]))
    pc.index[h] = pc.index[next(iter(pc._hashes([1, 2, 3, 4])))[0]]  # forge: another prompt's hash hits
    assert pc.restore([9, 9, 9, 9, 9], slot) == 0


def test_entries_must_be_positive():
    with pytest.raises(ValueError):
        PrefixCache(SlotKVCache(1, 1, 1, 8, 2), 0)


# ----- priority preemption (the scheduler hands a busy slot to a more urgent request) ------------
def _preemption_run(prefix_entries: int) -> tuple[dict[str, str], dict[str, float], int]:
    """Two low-priority long answers fill both slots; then an urgent short one arrives."""
    eng = LLMEngine(engine_config(max_num_seqs=2, max_model_len=256, prefix_cache_entries=prefix_entries),
                    weights=weights()).start()
    long = SamplingParams(temperature=0.0, max_tokens=60, ignore_eos=True, priority=5)
    seeded = SamplingParams(temperature=1.0, seed=3, max_tokens=60, ignore_eos=True, priority=5)
    urgent = SamplingParams(temperature=0.0, max_tokens=4, priority=-1)
    texts: dict[str, str] = {}
    finished_at: dict[str, float] = {}
    first_token = threading.Event()

    def run(name: str, prompt: str, params: SamplingParams) -> None:
        def sink(c) -> None:
            texts[name] = texts.get(name, "") + c.text
            if c.token_ids and name == "low-greedy":
                first_token.set()
            if c.finish_reason is not None:
                finished_at[name] = time.monotonic()

        eng.submit(eng.encode_prompt(prompt), params, sink, request_id=name)

    try:
        run("low-greedy", "Count slowly from one to one hundred:", long)
        run("low-seeded", "Write a long story about a lighthouse:", seeded)
        assert first_token.wait(60)
        run("urgent", "What is 2 + 2?", urgent)
        wait_until(lambda: len(finished_at) == 3, 120, "all three requests finished", interval=0.01)
        return texts, finished_at, eng.scheduler.preemptions
    finally:
        eng.shutdown()


_ALONE: dict[tuple[str, str], str] = {}


def _alone(prompt: str, params: SamplingParams) -> str:
    """The answer given alone on a fresh engine (computed once: both preemption modes compare to it)."""
    key = (prompt, repr(params))
    if key not in _ALONE:
        eng = LLMEngine(engine_config(max_model_len=256), weights=weights()).start()
        try:
            _ALONE[key] = "".join(c.text for c in eng.generate_blocking(prompt, params, timeout_s=120))
        finally:
            eng.shutdown()
    return _ALONE[key]


@pytest.mark.parametrize("prefix_entries", [0, 2], ids=["recomputed", "kv-kept"])
def test_an_urgent_request_preempts_and_the_preempted_answer_is_unchanged(prefix_entries):
    texts, finished_at, preemptions = _preemption_run(prefix_entries)
    assert len(finished_at) == 3 and preemptions >= 1
    # the urgent request did not wait for a long answer to finish
    assert finished_at["urgent"] < min(finished_at["low-greedy"], finished_at["low-seeded"])
    # the preempted requests resumed with the answers they would have given alone (greedy and seeded)
    assert texts["low-greedy"] == _alone("Count slowly from one to one hundred:",
                                         SamplingParams(temperature=0.0, max_tokens=60, ignore_eos=True))
    assert texts["low-seeded"] == _alone("Write a long story about a lighthouse:",
                                         SamplingParams(temperature=1.0, seed=3, max_tokens=60, ignore_eos=True))
    assert texts["urgent"] == _alone("What is 2 + 2?", SamplingParams(temperature=0.0, max_tokens=4))


def test_priority_is_range_checked():
    from server.llm.errors import LLMRequestError

    with pytest.raises(LLMRequestError) as err:
        SamplingParams(priority=10**6).validate()
    assert err.value.field == "priority"
