"""Quality gates on the evaluation set (bench/data/rag_eval.jsonl) over the default corpus.

Retrieval is held to its targets on every question (hit-rate@5 ≥ 0.90, MRR@10 ≥ 0.75). Answers go
through the real pipeline (input rails, retrieval, the prompt template, the LLM engine in this
process, output rails) on every second unanswerable question and a fixed sample of answerable ones
(CI's time; the whole set takes ~20 minutes on two cores: ``python -m bench.rag_eval``): grounded-answer rate ≥ 0.85,
abstention on unanswerable ≥ 0.80, no toxic output.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from server.rag.eval_runner import ask_all, default_corpus_store
from server.rag.evaluation import gold_rank, load_items, summarize
from tests.support.paths import EVAL_SET, TEST_CACHE

pytestmark = [pytest.mark.integration, pytest.mark.eval]

ANSWERABLE_SAMPLE = 16  # every 8th answerable question: spread over the corpus's topics


@pytest.fixture(scope="module")
def store():
    """The default corpus, ingested once per corpus + embedder + chunking key (server/rag/eval_runner.py)."""
    return default_corpus_store(TEST_CACHE)


@pytest.fixture(scope="module")
def items():
    return load_items(EVAL_SET)


def test_retrieval_meets_its_targets_on_every_question(store, items):
    from server.rag.embedder import Embedder
    from server.rag.retriever import Retriever
    from server.rag.store import RetrievalStore

    retriever = Retriever(RetrievalStore(store), Embedder())
    answerable = [it for it in items if it.answerable]
    hits = retriever.search_vectors(retriever.embedder.encode([it.question for it in answerable]), 10)
    ranks = [gold_rank([h.chunk.section for h in row], it.gold_sections) for it, row in zip(answerable, hits,
                                                                                              strict=True)]
    hit5 = np.mean([r is not None and r <= 5 for r in ranks])
    mrr = np.mean([1.0 / r if r is not None else 0.0 for r in ranks])
    assert hit5 >= 0.90, f"hit-rate@5 {hit5:.3f}"
    assert mrr >= 0.75, f"MRR@10 {mrr:.3f}"


@pytest.mark.timeout(600)
def test_answers_are_grounded_and_unanswerable_questions_abstain(store, items):
    from tests.support.llm_fixtures import llm_test_backend

    answerable = [it for it in items if it.answerable][::8][:ANSWERABLE_SAMPLE]
    sample = answerable + [it for it in items if not it.answerable][::2]
    results = asyncio.run(ask_all(sample, llm_test_backend(), 4, store))
    report = summarize(results, sample)
    assert report.grounded_rate >= 0.85, report
    assert report.abstention_accuracy >= 0.80, report
    assert report.false_abstention <= 0.25, report  # a sample of 16: a few abstentions are tolerated
    refused = [r.id for r in results if r.outcome == "refused"]
    assert not refused, f"benign questions refused: {refused}"
    from server.guardrails.output_rails import toxicity

    scores = toxicity([r.answer for r in results])
    assert (scores < 0.9).all(), [r.answer for r, s in zip(results, scores, strict=True) if s >= 0.9]
