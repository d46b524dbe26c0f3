"""Scoring a batch of bus events: through a running gateway (``--address``) or in this process.

Why both: a deployment that already runs ``stackserve serve`` scores through it (one set of models,
the gateway's coalescing, admission and metrics); a pipeline host without a server loads the
registered champion the way batch scoring does (``load_scorer``: MLflow registry, compiled kernels).
Unlike batch scoring, the stream arrives in order, so models with stream features are served too:
in process, per-entity state lives here (in memory: a restarted consumer starts it fresh); through
the gateway, the gateway keeps it, keyed by the entity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from server.config import Settings


@dataclass(frozen=True, slots=True)
class BatchScores:
    model: str
    version: str
    scores: np.ndarray
    is_anomaly: np.ndarray


class EventScorer(Protocol):
    """What the consumer needs: the model's feature names and a batch scored in order."""

    feature_names: list[str]

    async def score(self, X: np.ndarray, entities: Sequence[str]) -> BatchScores: ...

    async def close(self) -> None: ...


class InProcessScorer:
    """The registered champion, loaded as batch scoring loads it (``load_scorer``)."""

    def __init__(self, settings: Settings, model: str = "") -> None:
        from server.anomaly.scorer import load_scorer

        self.scorer = load_scorer(settings)
        self.name = model or settings.anomaly.default_model
        servable = self.scorer.model(self.name)  # UnknownModelError names the served ones
        self.card = servable.card
        self.feature_names = list(self.card.feature_names)
        self.state = None
        if self.card.stream is not None:
            from server.anomaly.features import new_stream_state

            self.state = new_stream_state(self.card.n_raw, self.card.stream, settings.anomaly.stream_max_entities)

    async def score(self, X: np.ndarray, entities: Sequence[str]) -> BatchScores:
        if self.state is not None:
            from server.anomaly.features import stream_matrix

            X = stream_matrix(self.state, entities, X)
        else:
            X = np.ascontiguousarray(X, dtype=np.float32)  # as batch scoring hands it over
        r = self.scorer.score(self.name, X)
        return BatchScores(r.model, r.version, r.scores, r.is_anomaly)

    async def close(self) -> None:
        return None


class GatewayScorer:
    """A running gateway, over gRPC (``AsyncAnomalyClient``): for a stream-feature model, the entity keys
    travel with the batch and the gateway keeps the per-entity state."""

    def __init__(self, address: str, model: str = "", timeout_s: float = 30.0) -> None:
        from server.client import AsyncAnomalyClient

        self.client = AsyncAnomalyClient(address)
        self.model = model
        self.timeout_s = timeout_s
        self.feature_names: list[str] = []
        self.stream = False

    async def start(self) -> GatewayScorer:
        models = await self.client.list_models()
        by_name = {m.name: m for m in models}
        if not models:
            raise ValueError(f"the gateway at {self.client.address} serves no anomaly model")
        default = next((m for m in models if m.is_default), models[0])
        chosen = by_name.get(self.model) if self.model else default
        if chosen is None:
            raise ValueError(f"the gateway at {self.client.address} does not serve {self.model!r}: {sorted(by_name)}")
        self.model = chosen.name
        self.feature_names = list(chosen.feature_names)
        self.stream = bool(chosen.uses_stream_features)
        return self

    async def score(self, X: np.ndarray, entities: Sequence[str]) -> BatchScores:
        # entity keys only for a stream-feature model: the gateway refuses them for any other
        keys = list(entities) if self.stream else None
        r = await self.client.score(X, self.model, entity_keys=keys, timeout=self.timeout_s)
        return BatchScores(r.model, r.version, r.scores, r.is_anomaly)

    async def close(self) -> None:
        await self.client.close()


async def make_scorer(settings: Settings, address: str | None, model: str = "") -> EventScorer:
    if address:
        return await GatewayScorer(address, model).start()
    return InProcessScorer(settings, model)
