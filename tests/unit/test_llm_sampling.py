"""Sampler, stop strings and streaming detokenization: pure functions, no model."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from server.llm.errors import LLMRequestError
from server.llm.params import SamplingParams
from server.llm.request import StopMatcher
from server.llm.sampler import (
    RowState,
    apply_openai_penalties,
    apply_repetition_penalty,
    filter_min_p,
    filter_top_k_top_p,
    sample,
)
from server.llm.tokenizer import IncrementalDecoder
from tests.support.hypothesis_profiles import examples
from tests.support.llm_fixtures import tokenizer

V = 50


def logits_strategy(n=V):
    return st.lists(st.floats(-20, 20, allow_nan=False), min_size=n, max_size=n).map(
        lambda xs: torch.tensor(xs, dtype=torch.float32)
    )


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -3}, "max_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"seed": -1}, "seed"),
        ({"stop": ("",)}, "stop"),
        ({"stop": tuple("abcdefghij")}, "stop"),
        ({"presence_penalty": 2.5}, "presence_penalty"),
        ({"frequency_penalty": -2.01}, "frequency_penalty"),
        ({"frequency_penalty": math.nan}, "frequency_penalty"),
        ({"min_p": 1.5}, "min_p"),
        ({"min_p": -0.1}, "min_p"),
        ({"stop_token_ids": tuple(range(17))}, "stop_token_ids"),
        ({"stop_token_ids": (-1,)}, "stop_token_ids"),
    ],
)
def test_invalid_params_name_the_field(kwargs, field):
    with pytest.raises(LLMRequestError) as err:
        SamplingParams(**kwargs).validate()
    assert err.value.field == field


@settings(max_examples=examples(50), deadline=None)
@given(logits_strategy(), st.integers(1, V), st.floats(0.01, 1.0))
def test_top_k_top_p_keep_the_smallest_sufficient_set(logits, k, p):
    kept = torch.isfinite(filter_top_k_top_p(logits, k, p))
    assert 1 <= int(kept.sum()) <= k
    # everything kept ranks above everything dropped
    if (~kept).any():
        assert logits[kept].min() >= logits[~kept].max()
    # the kept set (within the top-k) reaches mass p, and dropping its weakest member would not
    topk = filter_top_k_top_p(logits, k, 1.0)
    probs = torch.softmax(topk, dim=-1)
    mass = float(probs[kept].sum())
    weakest = float(probs[kept].min())
    assert mass >= min(p, float(probs[torch.isfinite(topk)].sum())) - 1e-5
    assert mass - weakest < p + 1e-5


@settings(max_examples=examples(30), deadline=None)
@given(logits_strategy(), st.floats(1.01, 3.0))
def test_repetition_penalty_lowers_seen_tokens_only(logits, penalty):
    seen = torch.zeros(V, dtype=torch.bool)
    seen[::3] = True
    out = apply_repetition_penalty(logits, seen, penalty)
    assert torch.equal(out[~seen], logits[~seen])
    assert (out[seen] <= logits[seen]).all()


def test_greedy_and_degenerate_sampling_agree():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, V, generator=g)
    greedy = [RowState(SamplingParams(temperature=0), [], V) for _ in range(6)]
    top1 = [RowState(SamplingParams(temperature=0.7, top_k=1, seed=i), [], V) for i in range(6)]
    tiny_p = [RowState(SamplingParams(temperature=1.3, top_p=1e-6, seed=i), [], V) for i in range(6)]
    want = logits.argmax(-1).tolist()
    assert sample(logits, greedy) == want
    assert sample(logits, top1) == want
    assert sample(logits, tiny_p) == want


def test_same_seed_same_tokens_whatever_the_batch():
    logits = torch.randn(4, V, generator=torch.Generator().manual_seed(1))

    def draw(seed, rows):
        states = [RowState(SamplingParams(temperature=1.0, seed=seed), [], V) for _ in rows]
        return [sample(logits[rows], states)[0] for _ in range(20)]

    assert draw(5, [0]) == draw(5, [0])
    assert draw(5, [0, 1, 2]) == draw(5, [0])  # other rows in the batch don't change row 0
    assert draw(5, [0]) != draw(6, [0])


def test_temperature_sampling_follows_the_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    state = RowState(SamplingParams(temperature=1.0, seed=3), [], 4)
    counts = torch.zeros(4)
    for _ in range(4000):
        counts[sample(logits, [state])[0]] += 1
    expected = torch.softmax(logits[0], -1)
    assert (counts / 4000 - expected).abs().max() < 0.03


def test_stop_matcher_finds_and_holds_back():
    m = StopMatcher(("###", "\nUser:"))
    assert m.find("hello ### world", 0) == 6
    assert m.find("hello", 0) == -1
    assert m.holdback("answer ##") == 2
    assert m.holdback("answer\nUs") == 3
    assert m.holdback("answer") == 0


@settings(max_examples=examples(40), deadline=None)
@given(st.text(min_size=0, max_size=40))
def test_incremental_decoder_streams_exact_text(text):
    tok = tokenizer()
    ids = tok.encode(text)
    assume(tok.decode(ids, skip_special=False) == text)  # bytes missing from the vocabulary can't round-trip
    dec = IncrementalDecoder(tok, skip_special=False)
    pieces = [dec.push(i) for i in ids] + [dec.flush()]
    assert "".join(pieces) == text
    for piece in pieces:
        piece.encode("utf-8")  # every piece is valid on its own


@settings(max_examples=examples(50), deadline=None)
@given(logits_strategy(), st.lists(st.integers(0, V - 1), max_size=30), st.floats(-2, 2), st.floats(-2, 2))
def test_openai_penalties_match_the_rule_token_by_token(logits, generated, presence, frequency):
    """The vectorised rule against OpenAI's formula written out per token (empty history included)."""
    counts = torch.zeros(V)
    for t in generated:
        counts[t] += 1
    out = apply_openai_penalties(logits, counts, presence, frequency)
    for t in range(V):
        n = generated.count(t)
        want = float(logits[t]) - (presence if n else 0.0) - frequency * n
        assert float(out[t]) == pytest.approx(want, abs=1e-4)


@settings(max_examples=examples(50), deadline=None)
@given(logits_strategy(), st.floats(0.0, 1.0))
def test_min_p_keeps_exactly_the_tokens_above_the_scaled_top_probability(logits, min_p):
    kept = torch.isfinite(filter_min_p(logits, min_p))
    probs = torch.softmax(logits, dim=-1)
    assert kept[int(torch.argmax(logits))]  # the top token always survives
    assert torch.equal(kept, probs >= min_p * probs.max()) or min_p == 0.0


def test_penalties_change_greedy_and_follow_the_generated_tokens():
    """A greedy row with a frequency penalty stops repeating its argmax; an unpenalized batchmate
    in the same call keeps the plain argmax (the batched fast path must not swallow the penalty)."""
    logits = torch.tensor([[3.0, 2.5, 0.0, -1.0]] * 2)
    penalized = RowState(SamplingParams(temperature=0, frequency_penalty=1.0), [0, 0, 0], 4)  # prompt not counted
    plain = RowState(SamplingParams(temperature=0), [], 4)
    assert sample(logits, [penalized, plain]) == [0, 0]  # nothing generated yet: no penalty
    assert sample(logits, [penalized, plain]) == [1, 0]  # token 0 once: 3.0 - 1 < 2.5
    assert sample(logits, [penalized, plain]) == [0, 0]  # 1 once too: 2.0 vs 1.5


def test_min_p_one_is_greedy_for_sampled_rows():
    logits = torch.randn(5, V, generator=torch.Generator().manual_seed(2))
    states = [RowState(SamplingParams(temperature=1.5, min_p=1.0, seed=i), [], V) for i in range(5)]
    assert sample(logits, states) == logits.argmax(-1).tolist()
