"""The short-text score cache: a hit is exactly what a recompute gives, it stays bounded, long texts
are never kept, and the classifier's scores do not change with it."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.guardrails.classifier import Head, RiskClassifier
from server.guardrails.short_text_cache import ShortTextCache
from tests.support.hypothesis_profiles import examples


class Counting:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, batch: list[str]) -> list[int]:
        self.seen += batch
        return [len(t) * 10 + t.count("a") for t in batch]


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.text(max_size=12), max_size=30), st.integers(0, 8))
def test_lookup_equals_compute_and_stays_bounded(texts, capacity):
    cache: ShortTextCache[int] = ShortTextCache(capacity=capacity, max_chars=8)
    f = Counting()
    first = cache.lookup(texts, "k", f)
    assert first == Counting()(texts)
    assert cache.lookup(texts, "k", f) == first  # hits and recomputes agree
    assert len(cache) <= capacity
    assert all(len(t) <= 8 for t, _ in cache._items)


def test_short_texts_are_computed_once_long_ones_every_time():
    cache: ShortTextCache[int] = ShortTextCache(capacity=10, max_chars=5)
    f = Counting()
    cache.lookup(["Sure", "a long opening"], "k", f)
    cache.lookup(["Sure", "a long opening"], "k", f)
    assert f.seen == ["Sure", "a long opening", "a long opening"]
    assert (cache.hits, cache.misses) == (1, 3)
    cache.lookup(["Sure"], "other key", f)  # the key separates what different models scored
    assert f.seen[-1] == "Sure"


def test_least_recently_used_goes_first():
    cache: ShortTextCache[int] = ShortTextCache(capacity=2)
    f = Counting()
    cache.lookup(["a", "b"], 0, f)
    cache.lookup(["a"], 0, f)  # a is now the most recent
    cache.lookup(["c"], 0, f)  # evicts b
    f.seen.clear()
    cache.lookup(["a", "b", "c"], 0, f)
    assert f.seen == ["b"]


def test_a_compute_that_loses_rows_is_an_error_not_a_shifted_answer():
    cache: ShortTextCache[int] = ShortTextCache()
    with pytest.raises(ValueError, match="2 texts"):
        cache.lookup(["x", "y"], 0, lambda batch: [1])
    with pytest.raises(ValueError, match=">= 0"):
        ShortTextCache(capacity=-1)


def test_threads_share_it_without_losing_entries():
    cache: ShortTextCache[int] = ShortTextCache(capacity=1000)
    texts = [f"t{i}" for i in range(200)]
    errors = []

    def work() -> None:
        for _ in range(20):
            got = cache.lookup(texts, 0, Counting())
            if got != Counting()(texts):
                errors.append(got)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(cache) == 200


def test_classifier_scores_are_the_same_from_the_cache():
    rng = np.random.default_rng(0)
    dim = 8

    def embed(texts: list[str]) -> np.ndarray:
        return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=dim) for t in texts]).astype(
            np.float32) if texts else np.zeros((0, dim), np.float32)

    heads = {h: Head(rng.normal(size=2 * dim), 0.1, rng.normal(size=2**18) * 0.01, -0.2, 0.5)
             for h in ("harmful", "jailbreak", "injection", "harmful_output")}
    clf = RiskClassifier(embed, heads)
    texts = ["Sure", "The", "x" * 300, "Sure", ""]
    cold = clf.scores(texts)
    warm = clf.scores(texts)
    fresh = RiskClassifier(embed, heads)
    fresh.short_texts.capacity = 0  # never kept: every score recomputed
    short = np.array([len(t) <= clf.short_texts.max_chars for t in texts])
    for h in heads:
        np.testing.assert_array_equal(cold[h][short], warm[h][short])  # kept: the very same numbers
        # recomputed (long texts) in a batch of another size: the same up to float summation order
        np.testing.assert_allclose(warm[h], cold[h], rtol=1e-12)
        np.testing.assert_allclose(fresh.scores(texts)[h], cold[h], rtol=1e-12)
    assert clf.short_texts.hits > 0
