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

from bench.rag_eval import EVAL_SET, ensure_store, run_backend
from server.config import load_settings
from server.rag.evaluation import gold_rank, load_items, summarize

pytestmark = pytest.mark.integration

ANSWERABLE_SAMPLE = 16  # every 8th answerable question: spread over the corpus's topics


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("rag-pydoc")
    ensure_store(load_settings(None, rag={"store_dir": str(path)}))
    return path


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


def test_answers_are_grounded_and_unanswerable_questions_abstain(store, items):
    from tests.integration.conftest import llm_test_backend

    answerable = [it for it in items if it.answerable][::8][:ANSWERABLE_SAMPLE]
    sample = answerable + [it for it in items if not it.answerable][::2]
    results, _ = asyncio.run(run_backend(sample, llm_test_backend(), 4, store))
    report = summarize(results, sample)
    assert report.grounded_rate >= 0.85, report
    assert report.abstention_accuracy >= 0.80, report
    assert report.false_abstention <= 0.25, report  # a sample of 16: a few abstentions are tolerated
    refused = [r.id for r in results if r.outcome == "refused"]
    assert not refused, f"benign questions refused: {refused}"
    from server.guardrails.output_rails import toxicity

    scores = toxicity([r.answer for r in results])
    assert (scores < 0.9).all(), [r.answer for r, s in zip(results, scores, strict=True) if s >= 0.9]
