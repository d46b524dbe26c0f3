"""The evaluation metrics on hand-computed cases, and the evaluation set's own consistency."""

from __future__ import annotations

import pytest

from server.rag.evaluation import EvalItem, ItemResult, gold_rank, load_items, summarize, token_f1
from tests.support.paths import EVAL_SET


def test_token_f1():
    assert token_f1("The loop ends.", "the loop ends") == 1.0
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0
    assert token_f1("loop ends early", "loop ends") == pytest.approx(0.8)
    assert token_f1("cats", "dogs") == 0.0


def test_gold_rank():
    assert gold_rank(["a", "b", "c"], ("c", "z")) == 3
    assert gold_rank(["a"], ("z",)) is None and gold_rank([], ()) is None


def test_summarize():
    items = [EvalItem("1", "q1", ("A",), "x y", True), EvalItem("2", "q2", ("B",), "z", True),
             EvalItem("3", "q3", (), "", False), EvalItem("4", "q4", (), "", False)]
    results = [
        ItemResult("1", True, ["A", "C"], "answered", "x y", True, True, 1.0, 100.0, 10.0),
        ItemResult("2", True, ["C", "D", "E", "F", "G", "B"], "extractive", "w", True, False, 0.0, 300.0, 30.0),
        ItemResult("3", False, ["C"], "abstained", "", total_ms=50.0),
        ItemResult("4", False, ["C"], "answered", "made up", total_ms=50.0),
    ]
    rep = summarize(results, items)
    assert rep.hit_rate == {1: 0.5, 3: 0.5, 5: 0.5, 10: 1.0}
    assert rep.mrr_at_10 == pytest.approx((1 + 1 / 6) / 2)
    assert (rep.token_f1, rep.grounded_rate, rep.hallucination_rate) == (0.5, 1.0, 0.5)
    assert (rep.abstention_accuracy, rep.false_abstention, rep.refused) == (0.5, 0.0, 0)


def test_the_evaluation_set_is_well_formed():
    items = load_items(EVAL_SET)
    assert len(items) >= 150 and len({i.id for i in items}) == len(items)
    unanswerable = [i for i in items if not i.answerable]
    assert 0.15 <= len(unanswerable) / len(items) <= 0.25
    assert all(i.gold_sections and i.answer for i in items if i.answerable)
    from server.rag.documents import pydoc_corpus

    titles = {s.title for d in pydoc_corpus() for s in d.sections}
    missing = sorted({s for i in items for s in i.gold_sections} - titles)
    assert missing == [], f"gold sections not in the corpus: {missing}"
