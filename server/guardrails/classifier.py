"""Learned risk detectors: logistic-regression heads over a text's meaning and its wording.

Name-matching rules catch the templates they name and nothing else (an "evil *trusted* confidant"
walks past ``evil confidant``). These heads are trained on many families of attacks and benign
text (``server/guardrails/train.py``) and judged on families they never saw, so what they learn is
the shape of a request, not a template's name.

Each text is read two ways, both cheap enough for a request path:
- **meaning**: the retrieval embedder (MiniLM) over at most two pieces, the text's first and last
  ~``PIECE_CHARS`` characters (a jailbreak's persona sits at the start, the payload at the end;
  embedding every sentence window of a 2,000-character prompt took ~100 ms), pooled as mean and
  element-wise max → 768 features;
- **wording**: word 1-2-grams and character 3-5-grams hashed into ``2**HASH_BITS`` buckets,
  sublinear tf, L2-normalised (``sklearn``'s ``HashingVectorizer``: no vocabulary to ship).

A head is two logistic regressions, one per view, whose log-odds are averaged; its threshold is
chosen on development families (``train.py``). Heads: ``harmful`` (a request for seriously
harmful help), ``jailbreak`` (text that tries to switch a model's rules off), ``injection``
(instructions planted in a document for the model that reads it) and ``harmful_output`` (a draft
answer that complies with a harmful request).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server.guardrails.short_text_cache import ShortTextCache

MODEL_FILE = Path(__file__).with_name("models") / "risk_heads.npz"
PIECE_CHARS = 400  # ~80 embedder tokens: two pieces embed in ~16 ms on 2 cores (600: ~23 ms)
HASH_BITS = 18
HEADS = ("harmful", "jailbreak", "injection", "harmful_output")

Embed = Callable[[list[str]], np.ndarray]


def pieces(text: str, size: int = PIECE_CHARS) -> list[str]:
    """The text's first and last ``size`` characters, cut at whitespace (the whole text when short)."""
    text = " ".join(text.split())
    if len(text) <= size + size // 2:
        return [text]
    head = text[:size].rsplit(" ", 1)[0]
    tail = text[-size:].split(" ", 1)[-1]
    return [head, tail]


def meaning_features(texts: list[str], embed: Embed) -> np.ndarray:
    """[n, 2 * dim]: mean and element-wise max of each text's piece embeddings (the distinct pieces
    of all texts in one embed call)."""
    split = [pieces(t) or [""] for t in texts]
    unique = list(dict.fromkeys(p for ps in split for p in ps))  # a template's opening piece, once
    vectors = embed(unique) if unique else np.zeros((0, 384), np.float32)
    row_of = {p: i for i, p in enumerate(unique)}
    out = np.zeros((len(texts), 2 * vectors.shape[1]), np.float32)
    for i, ps in enumerate(split):
        rows = vectors[[row_of[p] for p in ps]]
        out[i, : vectors.shape[1]] = rows.mean(axis=0)
        out[i, vectors.shape[1] :] = rows.max(axis=0)
    return out


@functools.cache
def _vectorizers():
    from sklearn.feature_extraction.text import HashingVectorizer

    common = dict(n_features=2**HASH_BITS, alternate_sign=False, norm=None, lowercase=True)
    return (HashingVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", **common),
            HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), **common))


def wording_features(texts: list[str]):
    """Sparse [n, 2**HASH_BITS]: hashed word and character n-grams, sublinear tf, L2 rows."""
    from sklearn.preprocessing import normalize

    words, chars = _vectorizers()
    cleaned = [re.sub(r"\s+", " ", t) for t in texts]
    x = words.transform(cleaned) + chars.transform(cleaned)
    x.data = 1.0 + np.log(x.data)
    return normalize(x)


@dataclass(frozen=True, slots=True)
class Head:
    """One detector: a linear model per view; log-odds averaged, then the threshold."""

    meaning_w: np.ndarray  # [2 * dim]
    meaning_b: float
    wording_w: np.ndarray  # [2**HASH_BITS]
    wording_b: float
    threshold: float  # on the probability

    def probability(self, meaning: np.ndarray, wording) -> np.ndarray:
        z = 0.5 * (meaning @ self.meaning_w + self.meaning_b) + 0.5 * (np.asarray(wording @ self.wording_w).ravel()
                                                                       + self.wording_b)
        return 1.0 / (1.0 + np.exp(-z))


class RiskClassifier:
    """The trained heads (``models/risk_heads.npz``) over an embed function (local or remote)."""

    def __init__(self, embed: Embed, heads: dict[str, Head]) -> None:
        self.embed = embed
        self.heads = heads
        # a stream's opening words, judged before its first token is sent, repeat across requests
        self.short_texts: ShortTextCache[np.ndarray] = ShortTextCache()

    @classmethod
    def load(cls, embed: Embed, path: Path = MODEL_FILE) -> RiskClassifier:
        if not path.exists():
            raise FileNotFoundError(f"the guardrail model is missing: {path} (python -m server.guardrails.train)")
        data = np.load(path)
        heads = {}
        for name in HEADS:
            if f"{name}.meaning_w" not in data:
                continue
            heads[name] = Head(data[f"{name}.meaning_w"], float(data[f"{name}.meaning_b"]),
                               data[f"{name}.wording_w"], float(data[f"{name}.wording_b"]),
                               float(data[f"{name}.threshold"]))
        missing = set(HEADS) - set(heads)
        if missing:
            raise ValueError(f"{path} lacks the heads {sorted(missing)}: retrain (python -m server.guardrails.train)")
        return cls(embed, heads)

    def scores(self, texts: list[str], heads: tuple[str, ...] = HEADS) -> dict[str, np.ndarray]:
        """Probability per head for each text (one embed call for all texts)."""
        if not texts:
            return {h: np.zeros(0) for h in heads}

        def compute(batch: list[str]) -> list[np.ndarray]:
            meaning = meaning_features(batch, self.embed)
            wording = wording_features(batch)
            return list(np.stack([self.heads[h].probability(meaning, wording) for h in heads], axis=1))

        rows = np.stack(self.short_texts.lookup(list(texts), heads, compute))
        return {h: rows[:, j] for j, h in enumerate(heads)}

    def flags(self, texts: list[str], heads: tuple[str, ...] = HEADS) -> dict[str, np.ndarray]:
        """Boolean per head: the probability at or above the head's threshold."""
        return {h: p >= self.heads[h].threshold for h, p in self.scores(texts, heads).items()}


def save_heads(path: Path, heads: dict[str, Head], meta: dict[str, str]) -> None:
    """Write the heads (float32, compressed) with the training metadata as strings."""
    arrays: dict[str, np.ndarray] = {}
    for name, h in heads.items():
        arrays[f"{name}.meaning_w"] = h.meaning_w.astype(np.float32)
        arrays[f"{name}.meaning_b"] = np.float64(h.meaning_b)
        arrays[f"{name}.wording_w"] = h.wording_w.astype(np.float32)
        arrays[f"{name}.wording_b"] = np.float64(h.wording_b)
        arrays[f"{name}.threshold"] = np.float64(h.threshold)
    for k, v in meta.items():
        arrays[f"meta.{k}"] = np.array(v)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
