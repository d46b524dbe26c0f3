"""Where scoring happens: a Ray Serve deployment, or the scorer in this process.

The gateway talks to a backend through two calls; Ray's ``DeploymentHandle`` is one
implementation, the in-process ``AnomalyScorer`` is the other (used by unit tests
of the gateway and by ``stackserve serve --no-ray`` on a machine without Ray).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from server.anomaly.scorer import AnomalyScorer, ScoreResult


class AnomalyBackend(Protocol):
    async def models(self) -> list[dict]: ...

    async def score(self, model: str, X: np.ndarray, request_ids: Sequence[str]) -> ScoreResult: ...


class LocalAnomalyBackend:
    def __init__(self, scorer: AnomalyScorer):
        self.scorer = scorer

    async def models(self) -> list[dict]:
        return self.scorer.info()

    async def score(self, model: str, X: np.ndarray, request_ids: Sequence[str]) -> ScoreResult:
        return self.scorer.score(model, X)


class RayAnomalyBackend:
    """Calls the AnomalyScorer deployment through a Ray Serve DeploymentHandle."""

    def __init__(self, handle: Any):
        self.handle = handle

    async def models(self) -> list[dict]:
        return await self.handle.models.remote()

    async def score(self, model: str, X: np.ndarray, request_ids: Sequence[str]) -> ScoreResult:
        return await self.handle.score.remote(model, X, list(request_ids))
