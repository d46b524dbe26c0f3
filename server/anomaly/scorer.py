"""The AnomalyScorer: scores feature matrices with the loaded champion models.

Kept free of Ray so it can be tested and benchmarked alone; the Ray Serve
deployment (``deployments/anomaly_scorer.py``) only wraps it. It scores many
(model, matrix) items at once by concatenating those of the same model, which is
what makes replica-side batching pay off: one kernel call per model per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from server.anomaly.model import ServableModel


class UnknownModelError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(slots=True)
class ScoreResult:
    model: str
    version: str
    threshold: float
    scores: np.ndarray  # float64, higher = more anomalous
    is_anomaly: np.ndarray  # bool


class AnomalyScorer:
    def __init__(self, models: Mapping[str, ServableModel]):
        if not models:
            raise ValueError("AnomalyScorer needs at least one model")
        self.models = dict(models)

    def info(self) -> list[dict]:
        """Model metadata the gateway needs to validate requests before they cross into Ray."""
        return [
            {
                "name": name,
                "version": m.card.version,
                "kind": m.card.kind,
                "feature_names": list(m.card.feature_names),
                "n_inputs": m.n_inputs,
                "stream": None
                if m.card.stream is None
                else {"window": m.card.stream.window, "alpha": m.card.stream.alpha},
                "threshold": m.card.threshold,
                "reference": m.reference,
            }
            for name, m in self.models.items()
        ]

    def model(self, name: str) -> ServableModel:
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModelError(f"unknown model {name!r}; serving {sorted(self.models)}") from None

    def score(self, name: str, X: np.ndarray) -> ScoreResult:
        return self.score_many([(name, X)])[0]

    def score_many(self, items: Sequence[tuple[str, np.ndarray]]) -> list[ScoreResult]:
        """Score every item, one kernel call per distinct model."""
        results: list[ScoreResult | None] = [None] * len(items)
        by_model: dict[str, list[int]] = {}
        for i, (name, X) in enumerate(items):
            model = self.model(name)
            if X.ndim != 2 or X.shape[1] != model.n_inputs:
                raise ValueError(f"model {name!r} takes {model.n_inputs} inputs per event, got shape {X.shape}")
            by_model.setdefault(name, []).append(i)
        for name, idx in by_model.items():
            model = self.models[name]
            mats = [items[i][1] for i in idx]
            X = mats[0] if len(mats) == 1 else np.concatenate(mats, axis=0)
            scores = model.score(X)
            flags = scores >= model.card.threshold
            start = 0
            for i, m in zip(idx, mats, strict=True):
                stop = start + m.shape[0]
                results[i] = ScoreResult(
                    name, model.card.version, model.card.threshold, scores[start:stop], flags[start:stop]
                )
                start = stop
        return results  # type: ignore[return-value]
