"""The engine loop on the real model (fp32 backend): batching, cancellation, limits, stops."""

from __future__ import annotations

import asyncio
import time

import pytest

from server.llm.engine import LLMEngine
from server.llm.errors import ContextLengthError, LLMRequestError, WaitingQueueFullError
from server.llm.params import SamplingParams
from tests.support.llm_fixtures import engine_config, weights
from tests.support.waiting import poll_async, wait_until

GREEDY = SamplingParams(temperature=0.0, max_tokens=12)


@pytest.fixture(scope="module")
def engine():
    eng = LLMEngine(engine_config(), weights=weights()).start()
    yield eng
    eng.shutdown()


def text_of(chunks):
    return "".join(c.text for c in chunks)


def tokens_of(chunks):
    return [t for c in chunks for t in c.token_ids]


def test_chat_answer_and_finish(engine):
    prompt = engine.chat_prompt([{"role": "user", "content": "What is the capital of France?"}])
    chunks = engine.generate_blocking(prompt, SamplingParams(temperature=0, max_tokens=24))
    assert "Paris" in text_of(chunks)
    assert chunks[-1].finish_reason == "stop"  # EOS (<|im_end|>) ends the turn
    assert chunks[-1].output_tokens == len(tokens_of(chunks))
    assert all(c.finish_reason is None for c in chunks[:-1])


def test_requests_joining_a_running_batch_get_their_solo_output(engine):
    prompts = ["The capital of France is", "List three fruits:", "1, 2, 3, 4,", "Water boils at"]
    solo = [tokens_of(engine.generate_blocking(p, GREEDY)) for p in prompts]

    async def run():
        decoding = [False] * len(prompts)

        async def one(i, p):
            if i:  # arrive while the previous request decodes (after its first token)
                await poll_async(lambda: decoding[i - 1], 60, f"request {i - 1} decoding", interval=0.001)
            out = []
            async for c in engine.generate(p, GREEDY):
                out += c.token_ids
                decoding[i] = True
            return out

        return await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))

    assert asyncio.run(run()) == solo
    assert engine.cache.used_slots == 0


def test_long_prompt_is_chunked_and_other_streams_keep_decoding(engine):
    long_prompt = " ".join(f"word{i}" for i in range(60))  # > 32-token step budget
    started = time.monotonic()
    steps_before = engine.steps

    async def run():
        short_chunks: list = []

        async def short_stream():
            async for c in engine.generate("Count: one, two,", SamplingParams(temperature=0, max_tokens=20)):
                short_chunks.append(c)
            return short_chunks

        short = asyncio.create_task(short_stream())
        # the short stream is decoding when the long prompt arrives
        await poll_async(lambda: short_chunks, 60, "the short stream's first token", interval=0.001)
        long = await _collect(engine, long_prompt, SamplingParams(temperature=0, max_tokens=3))
        return await short, long

    short, long = asyncio.run(run())
    assert len(tokens_of(long)) == 3
    assert len(tokens_of(short)) == 20
    # the long prompt took several steps (budget 32 < its length), and the short stream got
    # tokens between the start of that prefill and the long request's first token
    assert long[0].prompt_tokens > engine.config.max_num_batched_tokens
    prefill_start, first_long = long[0].first_scheduled_ts, long[0].token_ts[0]
    assert any(prefill_start < t < first_long for c in short for t in c.token_ts)
    assert engine.steps - steps_before >= 20
    assert time.monotonic() - started < 120


async def _collect(engine, prompt, params, **kw):
    return [c async for c in engine.generate(prompt, params, **kw)]


def test_seed_reproducible_and_seeds_differ(engine):
    p = SamplingParams(temperature=0.9, top_p=0.95, max_tokens=16, seed=1234, ignore_eos=True)
    a = tokens_of(engine.generate_blocking("Tell me a story:", p))
    b = tokens_of(engine.generate_blocking("Tell me a story:", p))
    other = SamplingParams(temperature=0.9, top_p=0.95, max_tokens=16, seed=99, ignore_eos=True)
    c = tokens_of(engine.generate_blocking("Tell me a story:", other))
    assert a == b
    assert a != c


def test_max_tokens_and_stop_strings(engine):
    chunks = engine.generate_blocking("1, 2, 3, 4, 5,", SamplingParams(temperature=0, max_tokens=5, ignore_eos=True))
    assert len(tokens_of(chunks)) == 5 and chunks[-1].finish_reason == "length"
    free = text_of(engine.generate_blocking("1, 2, 3, 4, 5,", SamplingParams(temperature=0, max_tokens=12)))
    assert " 8" in free
    stopped = engine.generate_blocking("1, 2, 3, 4, 5,", SamplingParams(temperature=0, max_tokens=12, stop=(" 8",)))
    assert stopped[-1].finish_reason == "stop"
    assert text_of(stopped) == free[: free.index(" 8")]


def test_cancel_frees_the_slot_within_a_step(engine):
    async def run():
        gen = engine.generate("Write a long essay about the sea.", SamplingParams(temperature=0, max_tokens=200))
        await gen.__anext__()
        assert engine.cache.used_slots == 1
        steps = engine.steps
        await gen.aclose()
        return steps

    steps = asyncio.run(run())
    wait_until(lambda: engine.cache.used_slots == 0, 30, "the cancelled request's slot freed", interval=0.005)
    assert engine.steps - steps <= 2  # the abort is applied before the next step runs


def test_deadline_expires_the_request(engine):
    chunks = engine.generate_blocking(
        "Write a long essay about the sea.", SamplingParams(temperature=0, max_tokens=200), timeout_s=0.3
    )
    assert chunks[-1].finish_reason == "deadline"
    assert engine.cache.used_slots == 0


def test_context_limit_errors_name_the_field(engine):
    too_long = list(range(10, 10 + engine.max_model_len))
    with pytest.raises(ContextLengthError) as err:
        engine.generate_blocking(too_long, GREEDY)
    assert err.value.field == "prompt"
    with pytest.raises(ContextLengthError) as err:
        engine.generate_blocking([5] * 200, SamplingParams(max_tokens=100))
    assert err.value.field == "max_tokens" and "at most 56" in err.value.reason
    with pytest.raises(LLMRequestError) as err:
        engine.generate_blocking("", GREEDY)
    assert err.value.field == "prompt"
    with pytest.raises(LLMRequestError):
        engine.generate_blocking([10**6], GREEDY)


def test_full_queue_is_refused():
    eng = LLMEngine(engine_config(max_num_seqs=1, max_waiting=1), weights=weights()).start()
    try:
        sinks = []
        p = SamplingParams(temperature=0, max_tokens=50, ignore_eos=True)
        eng.submit(eng.encode_prompt("a b c"), p, sinks.append)
        eng.submit(eng.encode_prompt("a b c"), p, sinks.append)
        with pytest.raises(WaitingQueueFullError):
            eng.submit(eng.encode_prompt("a b c"), p, sinks.append)
    finally:
        eng.shutdown()


def test_admission_by_expected_ttft_refuses_what_the_queue_cannot_serve_in_time():
    """Once the engine has measured its speed, a request whose expected TTFT is over the limit is
    refused at once (RESOURCE_EXHAUSTED at the gateway), naming the limit; a short queue admits."""
    eng = LLMEngine(engine_config(max_num_seqs=1, max_waiting=8, max_expected_ttft_s=0.2), weights=weights()).start()
    try:
        p = SamplingParams(temperature=0, max_tokens=240, ignore_eos=True)
        eng.generate_blocking(eng.encode_prompt("warm up " * 20), SamplingParams(temperature=0, max_tokens=4))
        assert eng.ttft.s_per_prefill_token is not None and eng.ttft.s_per_decode_step is not None
        sinks: list = []
        eng.submit(eng.encode_prompt("a b c"), p, sinks.append)  # holds the only slot for 240 steps
        wait_until(lambda: len(eng.scheduler.running) == 1, 30, "the first request running", interval=0.005)
        with pytest.raises(WaitingQueueFullError, match=r"interactive request's limit of 0\.20 s"):
            eng.submit(eng.encode_prompt("a b c"), p, sinks.append)  # waits ~240 decode steps for the slot
    finally:
        eng.shutdown()
    eng = LLMEngine(engine_config(max_num_seqs=2, max_waiting=8, max_expected_ttft_s=30), weights=weights()).start()
    try:
        eng.generate_blocking(eng.encode_prompt("warm up"), SamplingParams(temperature=0, max_tokens=2))
        sinks = []
        eng.submit(eng.encode_prompt("a b c"), SamplingParams(temperature=0, max_tokens=8), sinks.append)
    finally:
        eng.shutdown()


