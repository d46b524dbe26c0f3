"""Output rails: toxicity (streaming-safe), grounding in the retrieved context, answer structure.

Toxicity uses ``alt-profanity-check`` (a linear model over character and word n-grams whose
weights ship inside its wheel: ~0.1 ms a call), for profanity only; the streaming output rails
(``streaming.py``) call it on every window before the window is released.

Grounding: each answer sentence must be supported by the context, by meaning (cosine to its
closest context sentence) or by wording (share of its content words found in the context); the
answer is grounded when enough of its sentences are. The 135M model paraphrases poorly and copies
well, so both signals count.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field, field_validator

from server.guardrails.short_text_cache import ShortTextCache
from server.guardrails.verdict import Action, Verdict

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]+")
_STOPWORD_TEXT = (
    "the a an and or of to in is are was were be been it its this that these those for on with as by at from "
    "not no can will would should could may might do does did has have had you your we our they their he she "
    "his her them then than so if else when which what who how why there here also into out about over such "
    "use used using any all each other more most some only one two very just "
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


TOXICITY_CACHE: ShortTextCache[float] = ShortTextCache()  # a stream's opening words, judged before it starts


def toxicity(texts: list[str]) -> np.ndarray:
    """Probability that each text is offensive (alt-profanity-check)."""
    from profanity_check import predict_prob

    if not texts:
        return np.zeros(0)
    return np.asarray(TOXICITY_CACHE.lookup(
        list(texts), "profanity", lambda batch: [float(p) for p in predict_prob(batch)]), dtype=np.float64)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if len(_WORD.findall(s)) >= 3]


def content_words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if w.lower() not in STOPWORDS}


@dataclass(frozen=True, slots=True)
class GroundingConfig:
    min_cosine: float = 0.65  # a sentence this close in meaning to a context sentence is supported
    min_overlap: float = 0.6  # or: this share of its content words appear in the context
    min_supported: float = 0.75  # share of the answer's sentences that must be supported


def grounding(answer: str, context: list[str], embed: Callable[[list[str]], np.ndarray],
              cfg: GroundingConfig = GroundingConfig()) -> Verdict:
    """Whether ``answer`` says only what ``context`` says (score: the supported share)."""
    t0 = time.perf_counter()
    sentences = split_sentences(answer)
    if not sentences:
        return Verdict("grounding", Action.BLOCK, "empty", 0.0, time.perf_counter() - t0)
    ctx_sentences = [s for c in context for s in split_sentences(c)] or [c for c in context if c.strip()]
    if not ctx_sentences:
        return Verdict("grounding", Action.BLOCK, "no_context", 0.0, time.perf_counter() - t0)
    emb = embed(sentences + ctx_sentences)
    a, c = emb[: len(sentences)], emb[len(sentences) :]
    best = (a @ c.T).max(axis=1)
    vocab = set().union(*(content_words(x) for x in context))
    supported = 0
    for s, cos in zip(sentences, best, strict=True):
        words = content_words(s)
        overlap = len(words & vocab) / len(words) if words else 1.0
        supported += bool(cos >= cfg.min_cosine or overlap >= cfg.min_overlap)
    share = supported / len(sentences)
    action = Action.ALLOW if share >= cfg.min_supported else Action.BLOCK
    return Verdict("grounding", action, "grounded" if action is Action.ALLOW else "ungrounded", share,
                   time.perf_counter() - t0)


class GroundedAnswer(BaseModel):
    """The answer's structure, validated before it is sent: text, and citations among the chunks
    the answer was given (never an id the model made up)."""

    text: str = Field(min_length=1, max_length=20_000)
    citations: list[int] = Field(min_length=1)
    abstained: bool = False

    @field_validator("citations")
    @classmethod
    def _unique(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("citations repeat a chunk id")
        return v


def check_structure(text: str, citations: list[int], allowed_ids: set[int], abstained: bool) -> Verdict:
    t0 = time.perf_counter()
    try:
        answer = GroundedAnswer(text=text, citations=citations or ([] if not abstained else [-1]), abstained=abstained)
    except ValueError as exc:
        return Verdict("schema", Action.BLOCK, "invalid:" + type(exc).__name__, 0.0, time.perf_counter() - t0)
    unknown = [c for c in answer.citations if c not in allowed_ids and not abstained]
    if unknown:
        return Verdict("schema", Action.BLOCK, "unknown_citation", float(len(unknown)), time.perf_counter() - t0)
    return Verdict("schema", Action.ALLOW, "valid", 1.0, time.perf_counter() - t0)
