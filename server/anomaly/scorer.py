"""The AnomalyScorer: scores feature matrices with the loaded champion models.

Kept free of Ray so it can be tested and benchmarked alone; the Ray Serve
deployment (``deployments/anomaly_scorer.py``) only wraps it. It scores many
(model, matrix) items at once by concatenating those of the same model, which is
what makes replica-side batching pay off: one kernel call per model per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from server.anomaly.model import ServableModel
from server.config import FaultInjectionConfig, Settings
from server.rollout import challenger_key, parse_challenger_key


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

    def rows(self, start: int, stop: int) -> ScoreResult:
        """The result for rows ``start:stop`` (views, no copy): one request's share of a batch."""
        return ScoreResult(self.model, self.version, self.threshold, self.scores[start:stop],
                           self.is_anomaly[start:stop])


class FaultInjectedError(RuntimeError):
    """Raised on purpose by ``anomaly.fault_injection`` (tests and chaos drills)."""


class AnomalyScorer:
    def __init__(self, models: Mapping[str, ServableModel], faults: FaultInjectionConfig | None = None):
        if not models:
            raise ValueError("AnomalyScorer needs at least one model")
        self.models = dict(models)
        self.faults = faults if faults is not None and faults.model_key else None

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
                "feature_view": m.card.feature_view or None,
                # a rollout challenger (NAME@vN): the gateway keeps it out of the client-facing catalog
                "challenger_of": (parse_challenger_key(name) or (None,))[0],
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
            if self.faults is not None and self.faults.model_key == name:
                scores = self._inject(model, X, scores)
            flags = scores >= model.card.threshold
            start = 0
            for i, m in zip(idx, mats, strict=True):
                stop = start + m.shape[0]
                results[i] = ScoreResult(
                    name, model.card.version, model.card.threshold, scores[start:stop], flags[start:stop]
                )
                start = stop
        return results  # type: ignore[return-value]

    def _inject(self, model: ServableModel, X: np.ndarray, scores: np.ndarray) -> np.ndarray:
        f = self.faults
        assert f is not None
        if f.fail_when_feature:
            j = list(model.card.feature_names).index(f.fail_when_feature)
            if np.any(X[:, j] > f.above):
                raise FaultInjectedError(
                    f"fault injection: {f.model_key} fails on {f.fail_when_feature} > {f.above}"
                )
        return scores + f.score_offset if f.score_offset else scores


def load_scorer(settings: Settings) -> AnomalyScorer:
    """The configured champions, plus the rollout challenger under ``NAME@vVERSION`` when one is set.

    One loader for the Ray deployment and the in-process backend, so both serve the same keys.
    A challenger that cannot be loaded is logged and left out: a broken rollout must not stop
    the champions from serving.
    """
    from server.anomaly import registry

    cfg, ro = settings.anomaly, settings.rollout
    client = registry.connect(settings)
    models = registry.load_servables(client, cfg.models, cfg.alias, cfg.backend)
    if ro.model:
        key = challenger_key(ro.model, ro.challenger_version)
        try:
            if ro.model not in models:
                raise registry.ModelNotFoundError(f"{ro.model!r} is not among the served models {sorted(models)}")
            models[key] = registry.load_servable(client, ro.model, backend=cfg.backend, version=ro.challenger_version)
        except registry.ModelNotFoundError as exc:
            logging.getLogger("stackserve.rollout").error("rollout challenger %s not loaded: %s", key, exc)
    return AnomalyScorer(models, cfg.fault_injection)
