"""Where scoring happens: a Ray Serve deployment, or the scorer in this process.

The gateway talks to an endpoint through two calls; Ray's ``DeploymentHandle`` is one
implementation, the in-process ``AnomalyScorer`` is the other (used by unit tests
of the gateway and by ``stackserve serve --no-ray`` on a machine without Ray).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from server.anomaly.scorer import AnomalyScorer, ScoreResult
from server.gateway.ray_errors import from_ray


class AnomalyEndpoint(Protocol):
    async def models(self) -> list[dict]: ...

    async def score(self, model: str, X: np.ndarray, request_ids: Sequence[str]) -> ScoreResult: ...


class LocalAnomalyEndpoint:
    def __init__(self, scorer: AnomalyScorer):
        self.scorer = scorer

    async def models(self) -> list[dict]:
        return self.scorer.info()

    async def score(self, model: str, X: np.ndarray, request_ids: Sequence[str]) -> ScoreResult:
        return self.scorer.score(model, X)


class RayAnomalyEndpoint:
    """Calls the AnomalyScorer deployment through a Ray Serve DeploymentHandle."""

    def __init__(self, handle: Any):
        self.handle = handle

    async def models(self) -> list[dict]:
        try:
            return await self.handle.models.remote()
        except Exception as exc:
            raise from_ray(exc) from exc

    async def score(self, model: str, X: np.ndarray, request_ids: Sequence[str]) -> ScoreResult:
        """Ray's exceptions leave as ours (server/gateway/ray_errors.py)."""
        try:
            return await self.handle.score.remote(model, X, list(request_ids))
        except Exception as exc:
            raise from_ray(exc) from exc
