"""Paged KV cache and automatic prefix caching: shared blocks give the answers prefill would have,
under concurrency, eviction and preemption; a cached block is only ever served to a prompt that
really starts with the same tokens; a write into a shared block copies it."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from server.llm.engine import LLMEngine
from server.llm.kv_cache import PagedKVCache
from server.llm.params import SamplingParams
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


def _cache(n_blocks: int = 8, block: int = 4) -> PagedKVCache:
    return PagedKVCache(n_layers=2, n_slots=3, n_kv_heads=1, max_len=16, head_dim=2, block_size=block,
                        n_blocks=n_blocks, prefix_caching=True)


def _run(cache: PagedKVCache, tokens: list[int], value: float) -> int:
    """A sequence that prefills ``tokens`` (K = value, V = -value) and finishes; returns its slot."""
    slot = cache.allocate()
    n = cache.share_prefix(slot, tokens)
    assert cache.make_writable(slot, n, len(tokens))
    for j in range(n // cache.block_size, len(cache.blocks(slot))):
        cache.k[:, :, cache.blocks(slot)[j]] = value
        cache.v[:, :, cache.blocks(slot)[j]] = -value
    cache.commit(slot, len(tokens), lambda m: tokens[:m])
    return slot


def test_a_prompt_shares_the_blocks_of_its_longest_cached_prefix_without_copying():
    cache = _cache()
    first = _run(cache, list(range(10)), 7.0)  # blocks 0..3, 4..7 full and indexed; 8..9 not
    owned = cache.blocks(first)
    cache.free(first)
    assert cache.usage() == 0 and cache.free_blocks == 8  # parked blocks count as free (evictable)
    new = cache.allocate()
    assert cache.share_prefix(new, list(range(12))) == 8
    assert cache.blocks(new) == owned[:2]  # the same blocks: nothing was copied
    assert cache.make_writable(new, 8, 12) and cache.cow_copies == 0
    cache.free(new)
    other = cache.allocate()
    assert cache.share_prefix(other, [*range(6), 99, 98, 97]) == 4  # diverges inside the second block
    cache.free(other)
    other = cache.allocate()
    assert cache.share_prefix(other, [5, 4, 3, 2, 1]) == 0
    assert cache.share_prefix(cache.allocate(), list(range(8))) == 7  # all matched: the last token recomputed


def test_running_sequences_share_a_prefix_and_a_write_into_a_shared_block_copies_it():
    cache = _cache()
    a = _run(cache, list(range(8)), 3.0)  # still running: its two full blocks are indexed
    b = cache.allocate()
    assert cache.share_prefix(b, list(range(8))) == 7
    assert cache.blocks(b) == cache.blocks(a) and cache.usage() == 2 / 8
    assert cache.room(b, 7) == 9  # up to max_len: the copy of the last block and 2 more of the 6 free
    assert cache.make_writable(b, 7, 8)  # the last prompt token's K/V: copy-on-write
    assert cache.cow_copies == 1 and cache.blocks(b)[0] == cache.blocks(a)[0]
    assert cache.blocks(b)[1] != cache.blocks(a)[1]
    copy, orig = cache.blocks(b)[1], cache.blocks(a)[1]
    assert torch.equal(cache.k[:, :, copy], cache.k[:, :, orig])
    cache.k[:, :, copy, 3] = 42.0  # b writes its own copy; a's block is untouched
    assert torch.all(cache.k[:, :, orig] == 3.0)


def test_parked_blocks_are_evicted_least_recently_used_first_and_tail_before_head():
    cache = _cache(n_blocks=4)  # room for exactly two 2-block prompts
    cache.free(_run(cache, [100, 1, 2, 3, 4, 5, 6, 7], 1.0))
    cache.free(_run(cache, [200, 1, 2, 3, 4, 5, 6, 7], 2.0))
    touch = cache.allocate()
    assert cache.share_prefix(touch, [100, 1, 2, 3, 4, 5, 6, 7, 9]) == 8  # 100 used again: 200 is older
    cache.free(touch)
    cache.free(_run(cache, [300, 1, 2, 3, 9], 3.0))  # needs 2 blocks: both of 200's go, tail first
    probe = cache.allocate()
    assert cache.share_prefix(probe, [100, 1, 2, 3, 4, 5, 6, 7, 9]) == 8
    cache.free(probe)
    probe = cache.allocate()
    assert cache.share_prefix(probe, [200, 1, 2, 3, 4, 5, 6, 7, 9]) == 0
    cache.free(probe)
    # 3 blocks: the empty one, then the oldest parked: 300's head, then 100's tail (4..7); its head stays
    cache.free(_run(cache, [400, 9, 9, 9, 8, 8, 8, 8, 7], 4.0))
    probe = cache.allocate()
    assert cache.share_prefix(probe, [100, 1, 2, 3, 4, 5, 6, 7, 9]) == 4


def test_a_block_is_only_served_after_the_same_earlier_blocks():
    cache = _cache()
    cache.free(_run(cache, [1, 2, 3, 4, 5, 6, 7, 8], 1.0))
    probe = cache.allocate()
    # the second block's tokens alone, or after another first block, are another prefix
    assert cache.share_prefix(probe, [5, 6, 7, 8, 0]) == 0
    cache.free(probe)
    probe = cache.allocate()
    assert cache.share_prefix(probe, [9, 2, 3, 4, 5, 6, 7, 8, 0]) == 0


def test_the_pool_refuses_what_it_cannot_hold_and_changes_nothing():
    cache = PagedKVCache(1, 2, 1, 16, 2, block_size=4, n_blocks=5)
    a, b = cache.allocate(), cache.allocate()
    assert cache.make_writable(a, 0, 16)  # 4 blocks
    assert not cache.make_writable(b, 0, 8)  # 2 more do not fit
    assert cache.blocks(b) == [] and cache.free_blocks == 1 and cache.room(b, 0) == 4
    with pytest.raises(ValueError, match="max_len"):
        cache.make_writable(b, 0, 17)
    with pytest.raises(ValueError, match="one sequence"):
        PagedKVCache(1, 2, 1, 16, 2, block_size=4, n_blocks=3)
    with pytest.raises(ValueError, match="power of two"):
        PagedKVCache(1, 2, 1, 16, 2, block_size=6)
    cache.free(a)
    assert cache.free_blocks == 5 and cache.make_writable(b, 0, 16)


def test_a_small_pool_preempts_and_every_answer_is_unchanged():
    """Four 16-block prompts of long answers in a pool of 40 blocks: streams are preempted when it
    runs out, and resume (re-sharing their parked blocks) with the answers they give alone."""
    prompts = [f"Story number {i}: " + "once upon a time there was a lighthouse keeper. " * 18 for i in range(4)]
    params = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True)
    alone = [_alone(p, params) for p in prompts]
    cfg = engine_config(max_num_seqs=4, max_model_len=512, kv_cache_tokens=40 * 16, prefix_cache_entries=1)
    eng = LLMEngine(cfg, weights=weights()).start()
    try:
        out: list[str] = [""] * len(prompts)

        def ask(i: int) -> None:
            out[i] = "".join(c.text for c in eng.generate_blocking(prompts[i], params, timeout_s=300))

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert eng.scheduler.preemptions >= 1
        assert out == alone
        assert eng.cache.usage() == 0
    finally:
        eng.shutdown()


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


def test_prompts_that_hold_the_pool_between_them_do_not_deadlock():
    """Two prompts mid-prefill, each needing a block the other (and a third owner) holds, and no
    stream decoding whose growth would preempt: the scheduler preempts the later one and goes on."""
    from server.llm.request import Request
    from server.llm.scheduler import Scheduler
    from tests.support.llm_fixtures import tokenizer

    cache = PagedKVCache(1, 3, 1, 24, 2, block_size=4, n_blocks=10)
    sched = Scheduler(cache, max_num_batched_tokens=8)
    running = []
    for i in range(2):
        req = Request(f"r{i}", list(range(20)), SamplingParams(max_tokens=2), tokenizer(), 49152)
        req.slot = cache.allocate()
        assert cache.make_writable(req.slot, 0, 16)
        req.n_cached = 16
        sched.running.append(req)
        sched.by_slot[req.slot] = req
        running.append(req)
    assert cache.make_writable(cache.allocate(), 0, 8)  # another owner takes the last two blocks
    step = sched.schedule()
    assert step is not None and sched.preemptions == 1 and running[1].preemptions == 1
    # r0 finishes its prompt in the blocks r1 gave up; r1 starts over with what budget is left
    assert [(r.request_id, n) for r, n in step.prefill_chunks] == [("r0", 4), ("r1", 4)]
    assert [seg.start for seg in step.batch.prefills] == [16, 0]
