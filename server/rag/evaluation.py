"""Retrieval and answer quality over an evaluation set: the metrics, free of how answers are made.

An item has a question, the gold section titles that answer it (any one counts; empty for an
unanswerable question), and a short reference answer. Definitions:

* hit-rate@k: answerable questions with a gold section among the top-k retrieved chunks;
* MRR@10: mean reciprocal rank of the first gold chunk in the top 10 (0 when absent);
* token F1: SQuAD-style overlap of the final answer with the reference (answerable only);
* grounded-answer rate: answered answerable questions whose answer is supported by the sources it
  was given (the pipeline's own grounding check, or extractive by construction);
* hallucination rate: answered answerable questions whose answer is not supported by the *gold*
  sections' text, i.e. it came from the wrong place or from nowhere;
* abstention accuracy: unanswerable questions answered with an abstention.
"""

from __future__ import annotations

import json
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True, slots=True)
class EvalItem:
    id: str
    question: str
    gold_sections: tuple[str, ...]
    answer: str
    answerable: bool


def load_items(path: Path) -> list[EvalItem]:
    items = []
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            items.append(EvalItem(r["id"], r["question"], tuple(r["gold_sections"]), r["answer"], r["answerable"]))
    return items


def _tokens(text: str) -> list[str]:
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return [t for t in text.split() if t not in ("a", "an", "the")]


def token_f1(prediction: str, reference: str) -> float:
    p, r = _tokens(prediction), _tokens(reference)
    if not p or not r:
        return float(p == r)
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def gold_rank(sections: list[str], gold: tuple[str, ...]) -> int | None:
    """1-based rank of the first retrieved chunk from a gold section, None when none is."""
    return next((i + 1 for i, s in enumerate(sections) if s in gold), None)


@dataclass(slots=True)
class ItemResult:
    id: str
    answerable: bool
    retrieved_sections: list[str]
    outcome: str = ""  # answered | extractive | abstained | refused
    answer: str = ""
    grounded: bool = False  # against the sources it was given
    gold_supported: bool = False  # against the gold sections' text
    f1: float = 0.0
    total_ms: float = 0.0
    ttft_ms: float = 0.0


@dataclass(slots=True)
class Report:
    n: int
    n_answerable: int
    hit_rate: dict[int, float] = field(default_factory=dict)
    mrr_at_10: float = 0.0
    token_f1: float = 0.0
    grounded_rate: float = 0.0
    hallucination_rate: float = 0.0
    abstention_accuracy: float = 0.0
    false_abstention: float = 0.0
    refused: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)


def summarize(results: list[ItemResult], items: list[EvalItem], ks: tuple[int, ...] = (1, 3, 5, 10)) -> Report:
    gold = {it.id: it.gold_sections for it in items}
    ans = [r for r in results if r.answerable]
    un = [r for r in results if not r.answerable]
    ranks = [gold_rank(r.retrieved_sections, gold[r.id]) for r in ans]
    answered = [r for r in ans if r.outcome in ("answered", "extractive")]
    rep = Report(len(results), len(ans))
    rep.hit_rate = {k: float(np.mean([rk is not None and rk <= k for rk in ranks])) if ans else 0.0 for k in ks}
    rep.mrr_at_10 = float(np.mean([1 / rk if rk is not None and rk <= 10 else 0.0 for rk in ranks])) if ans else 0.0
    rep.token_f1 = float(np.mean([r.f1 for r in ans])) if ans else 0.0
    rep.grounded_rate = float(np.mean([r.grounded for r in answered])) if answered else 0.0
    rep.hallucination_rate = float(np.mean([not r.gold_supported for r in answered])) if answered else 0.0
    rep.abstention_accuracy = float(np.mean([r.outcome == "abstained" for r in un])) if un else 0.0
    rep.false_abstention = float(np.mean([r.outcome in ("abstained", "refused") for r in ans])) if ans else 0.0
    rep.refused = sum(r.outcome == "refused" for r in results)
    totals = [r.total_ms for r in results if r.total_ms]
    if totals:
        rep.latency_ms = {"p50": float(np.percentile(totals, 50)), "p95": float(np.percentile(totals, 95))}
    ttft = [r.ttft_ms for r in results if r.ttft_ms]
    if ttft:
        rep.latency_ms |= {"ttft_p50": float(np.percentile(ttft, 50)), "ttft_p95": float(np.percentile(ttft, 95))}
    return rep

