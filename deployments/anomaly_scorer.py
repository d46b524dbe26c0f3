"""AnomalyScorer deployment: champion models (and a rollout challenger) from MLflow, dynamic batching.

Two entry points share one batched path: ``score`` (numpy in, numpy out) for our
gateway, and ``Score`` (protobuf in and out) so Ray Serve's built-in gRPC proxy can
route to the same deployment; that proxy is the baseline our gateway is measured against.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from ray import serve
from ray.serve.metrics import Histogram

from server.anomaly.scorer import ScoreResult
from server.config import Settings

log = logging.getLogger("stackserve.anomaly")


@serve.deployment(name="AnomalyScorer", health_check_period_s=10)
class AnomalyScorerDeployment:
    def __init__(self, settings_json: str):
        from server.anomaly.catalog import CatalogEntry
        from server.anomaly.scorer import load_scorer

        self.settings = Settings.model_validate_json(settings_json)
        self.scorer = load_scorer(self.settings)  # champions, plus a rollout challenger as NAME@vN
        # a batch of up to 64 requests' events takes milliseconds to tens of ms to score: in a thread of
        # its own, so the replica's loop keeps taking calls, health checks and Serve's control messages
        self._scoring = ThreadPoolExecutor(1, thread_name_prefix="anomaly-score")
        self.catalog = {i["name"]: CatalogEntry.from_info(i) for i in self.scorer.info() if not i["challenger_of"]}
        self.batch_size = Histogram(
            "stackserve_replica_batch_calls",
            description="calls merged into one replica batch (@serve.batch)",
            boundaries=[1, 2, 4, 8, 16, 32, 64, 128],
        )
        self.batch_events = Histogram(
            "stackserve_replica_batch_events",
            description="events scored per replica batch",
            boundaries=[1, 16, 64, 256, 1024, 4096, 16384, 65536],
        )

    def reconfigure(self, user_config: dict) -> None:
        """Batching knobs can change at run time (serve deploy with a new user_config)."""
        if "max_batch_size" in user_config:
            self._batched.set_max_batch_size(int(user_config["max_batch_size"]))
        if "batch_wait_timeout_s" in user_config:
            self._batched.set_batch_wait_timeout_s(float(user_config["batch_wait_timeout_s"]))

    async def models(self) -> list[dict]:
        return self.scorer.info()

    async def score(self, model: str, X: np.ndarray, request_ids: Sequence[str] = ()) -> ScoreResult:
        return await self._batched((model, X))

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.0)  # reconfigure() applies the config
    async def _batched(self, items: list[tuple[str, np.ndarray]]) -> list[ScoreResult]:
        self.batch_size.observe(len(items))
        self.batch_events.observe(sum(x.shape[0] for _, x in items))
        return await asyncio.get_running_loop().run_in_executor(self._scoring, self.scorer.score_many, items)

    async def Score(self, request):
        """Baseline path for Ray Serve's own gRPC proxy: validate, score, answer (no coalescing)."""
        import grpc

        from server.protocol.anomaly_messages import score_response
        from server.protocol.anomaly_validation import parse_score_request
        from server.protocol.errors import ServingError

        cfg = self.settings.anomaly
        try:
            parsed = parse_score_request(request, self.catalog, cfg.default_model, cfg.default_stream_model)
        except ServingError as err:
            raise ValueError(f"{grpc.StatusCode.INVALID_ARGUMENT.name}: {err.details}") from None
        if parsed.entity_keys is not None:
            raise ValueError("stream models are served through the stackserve gateway only")
        return score_response(await self.score(parsed.model.name, parsed.raw))

    def check_health(self) -> None:
        if not self.scorer.models:
            raise RuntimeError("no models loaded")
