"""Where scoring happens: a Ray Serve deployment, or the scorer in this process.

The gateway talks to an endpoint through two calls; Ray's ``DeploymentHandle`` is one
implementation, the in-process ``AnomalyScorer`` is the other (used by unit tests
of the gateway and by ``stackserve serve --no-ray`` on a machine without Ray).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from server.anomaly.scorer import AnomalyScorer, ScoreResult
from server.gateway.ray_errors import ReplicaLostError, from_ray

log = logging.getLogger("stackserve.gateway")


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
        """Ray's exceptions leave as ours (server/gateway/ray_errors.py). Scoring is idempotent (the
        stream state is the gateway's, committed only after scores come back), so a call whose
        replica was lost is sent once more: Serve routes it to a live replica when there is one."""
        for attempt in (1, 2):
            try:
                return await self.handle.score.remote(model, X, list(request_ids))
            except Exception as exc:
                err = from_ray(exc)
                if attempt == 1 and isinstance(err, ReplicaLostError):
                    log.warning("scoring replica lost; retrying once", extra={"fields": {
                        "request_ids": list(request_ids)[:8], "error": str(err)[:300]}})
                    continue
                raise err from exc
        raise AssertionError("unreachable")
