"""Speculative decoding by n-gram lookup: the drafts come from the right place, drafting pauses when
it does not pay, and the engine's output is the same token for token with it on or off (greedy,
seeded sampling, penalties, a JSON schema, stop strings, max_tokens, concurrent streams)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.llm.engine import LLMEngine
from server.llm.params import SamplingParams
from server.llm.speculative import MAX_NGRAM, MIN_NGRAM, DraftController, NgramIndex
from tests.support import compiled
from tests.support.hypothesis_profiles import examples
from tests.support.llm_fixtures import engine_config, weights

CODE = '''def load_config(path):
    with open(path) as f:
        data = json.load(f)
    if "name" not in data:
        raise ValueError("config needs a name")
    return Config(name=data["name"], size=int(data.get("size", 0)))
'''


def reference_propose(tokens: list[int], k: int) -> list[int]:
    """Brute force: the longest suffix (MAX_NGRAM down to MIN_NGRAM) seen earlier, latest occurrence."""
    for n in range(min(MAX_NGRAM, len(tokens)), MIN_NGRAM - 1, -1):
        suffix = tokens[-n:]
        for start in range(len(tokens) - n - 1, -1, -1):  # occurrences ending before the last token
            if tokens[start : start + n] == suffix:
                return tokens[start + n : start + n + k]
    return []


@settings(max_examples=examples(200), deadline=None)
@given(tokens=st.lists(st.integers(0, 4), max_size=40), k=st.integers(0, 6), split=st.integers(0, 40))
def test_ngram_index_matches_brute_force(tokens, k, split):
    """Built incrementally (tokens appended after a first lookup) it answers as a full scan does."""
    split = min(split, len(tokens))
    seq = list(tokens[:split])
    index = NgramIndex(seq)
    index.propose(1)
    seq.extend(tokens[split:])
    assert index.propose(k) == (reference_propose(seq, k) if k else [])


def test_ngram_index_examples():
    assert NgramIndex([]).propose(4) == []
    assert NgramIndex([7]).propose(4) == []
    assert NgramIndex([1, 2, 3, 1, 2]).propose(4) == [3, 1, 2]  # the draft may run into the suffix
    assert NgramIndex([1, 2, 9, 9, 1, 2, 8, 1, 2]).propose(1) == [8]  # the latest occurrence wins
    assert NgramIndex([5, 1, 2, 3, 6, 9, 2, 3]).propose(2) == [6, 9]
    assert NgramIndex([5, 1, 2, 3, 6, 1, 2, 3]).propose(2) == [6, 1]  # longer match: 3 tokens


def test_draft_controller_pauses_and_resumes():
    c = DraftController(max_tokens=8)
    assert c.draft_len() == 5  # optimistic start
    for _ in range(4):
        c.record(4, 4)
    assert c.draft_len() == 8  # drafts accepted: long drafts
    while c.paused_for == 0:
        c.record(4, 0)
    first_pause = c.paused_for
    assert [c.draft_len() for _ in range(first_pause)] == [0] * first_pause  # no drafts while paused
    assert c.draft_len() >= 1  # then a retry
    while c.paused_for == 0:
        c.record(3, 0)
    assert c.paused_for == 2 * first_pause  # failing again pauses longer


@pytest.fixture(scope="module")
def engines():
    compiled.require("kernels.cpp._llm_step")
    kw = dict(backend="cpu-int4", max_num_seqs=4, max_model_len=512, max_num_batched_tokens=64, prefix_cache_entries=0)
    plain = LLMEngine(engine_config(speculative_tokens=0, **kw), weights=weights()).start()
    spec = LLMEngine(engine_config(speculative_tokens=8, speculative_max_batch=2, **kw), weights=weights()).start()
    yield plain, spec
    plain.shutdown()
    spec.shutdown()


def _run(engine: LLMEngine, prompt: str, params: SamplingParams) -> tuple[list[int], str, str]:
    chunks = engine.generate_blocking(prompt, params, timeout_s=120)
    return [t for c in chunks for t in c.token_ids], "".join(c.text for c in chunks), str(chunks[-1].finish_reason)


QUOTE = "Rename the function load_config to read_config and print the whole code:\n" + CODE
SCHEMA = '{"type":"object","properties":{"code":{"type":"string","maxLength":120}},"required":["code"]}'


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(temperature=0.0, max_tokens=120),
        SamplingParams(temperature=0.8, top_p=0.9, seed=11, max_tokens=100),
        SamplingParams(temperature=0.0, max_tokens=100, frequency_penalty=0.3, repetition_penalty=1.1),
        SamplingParams(temperature=0.7, seed=3, max_tokens=80, response_format="json_schema", json_schema=SCHEMA),
        SamplingParams(temperature=0.0, max_tokens=120, stop=("raise",)),
        SamplingParams(temperature=0.0, max_tokens=7),
    ],
    ids=["greedy", "seeded", "penalties", "json-schema", "stop-string", "max-tokens"],
)
def test_output_is_identical_with_speculation(engines, params):
    plain, spec = engines
    prompt = plain.chat_prompt([{"role": "user", "content": QUOTE}])
    before = spec.spec_drafted
    want = _run(plain, prompt, params)
    got = _run(spec, prompt, params)
    assert got == want
    if params.max_tokens > 7 and not params.response_format:
        assert spec.spec_drafted > before  # the quoted code was drafted from


def test_greedy_speculation_accepts_quoted_text(engines):
    plain, spec = engines
    prompt = plain.chat_prompt([{"role": "user", "content": QUOTE}])
    d0, a0 = spec.spec_drafted, spec.spec_accepted
    _run(spec, prompt, SamplingParams(temperature=0.0, max_tokens=120))
    drafted, accepted = spec.spec_drafted - d0, spec.spec_accepted - a0
    assert drafted and accepted / drafted > 0.5, (accepted, drafted)


def test_concurrent_streams_are_identical_with_speculation(engines):
    plain, spec = engines
    prompts = [plain.chat_prompt([{"role": "user", "content": q}]) for q in
               (QUOTE, "Repeat exactly: red green blue, red green blue, red green blue.", "Say hello.")]
    params = SamplingParams(temperature=0.0, max_tokens=60)
    want = [_run(plain, p, params) for p in prompts]
    got: list = [None] * len(prompts)

    def go(i: int) -> None:
        got[i] = _run(spec, prompts[i], params)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == want


def test_logprobs_match_the_forward_and_speculation(engines):
    """The sampled token's log-probability is the raw logits' log-softmax (checked against a direct
    forward of the prompt for the first token) and is the same whether speculation verified it."""
    import torch

    from server.llm.llama import PrefillSegment, StepBatch

    plain, spec = engines
    prompt = plain.chat_prompt([{"role": "user", "content": QUOTE}])
    params = SamplingParams(temperature=0.0, max_tokens=40, logprobs=True, top_logprobs=4)
    chunks = plain.generate_blocking(prompt, params, timeout_s=120)
    lps = [lp for c in chunks for lp in c.logprobs]
    tokens = [t for c in chunks for t in c.token_ids]
    assert [lp.token_id for lp in lps] == tokens
    for lp in lps:
        assert len(lp.top) == 4 and lp.top[0][0] == lp.token_id  # greedy: the likeliest token
        assert [v for _, v, _ in lp.top] == sorted((v for _, v, _ in lp.top), reverse=True)
        assert lp.token == plain.tokenizer.token_bytes([lp.token_id], skip_special=False)
    fresh = LLMEngine(plain.config, weights=weights())  # not started: its forward and cache are ours
    ids = fresh.encode_prompt(prompt)
    n = len(ids)
    slot = fresh.cache.allocate()
    assert fresh.cache.reserve(slot, n)
    batch = StepBatch(torch.tensor(ids), torch.arange(n), torch.empty(0, dtype=torch.long), [],
                      [PrefillSegment(slot, 0, n, 0)], torch.tensor([n - 1]))
    want = torch.log_softmax(fresh.forward(batch, fresh.cache)[0], -1)
    assert lps[0].logprob == pytest.approx(float(want[tokens[0]]), abs=1e-5)
    spec_chunks = spec.generate_blocking(prompt, params, timeout_s=120)
    spec_lps = [lp for c in spec_chunks for lp in c.logprobs]
    assert [lp.token_id for lp in spec_lps] == tokens
    assert [lp.logprob for lp in spec_lps] == pytest.approx([lp.logprob for lp in lps], abs=1e-4)
