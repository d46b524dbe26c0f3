"""Start and stop the whole server: Ray, the Serve apps, the gateway.

The gateway starts first and reports NOT_SERVING while Ray and the replicas come up, so health
checks and clients see "warming up" (UNAVAILABLE) rather than a refused connection. Endpoints whose
target exists only once Ray is up are bound late (``_LateRayAnomalyEndpoint``, ``_LateLLMEndpoint``).
The parts: server/ray_cluster.py (the cluster), server/serve_apps.py (the applications),
server/placement.py (where each model runs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from server.config import Settings
from server.gateway.anomaly_endpoint import RayAnomalyEndpoint
from server.gateway.embedder_endpoint import RayEmbedder
from server.gateway.llm_endpoint import LLMEndpoint, RayLLMEndpoint
from server.gateway.server import Gateway, start_gateway
from server.llm.serving import EngineInfo, LLMJob, Piece
from server.placement import (
    in_gateway,
    llm_in_gateway,
    local_anomaly_endpoint,
    local_embedder,
    local_llm_endpoint,
    retrieval_workload,
)
from server.ray_cluster import RayAttachment, connect_ray
from server.serve_apps import start_embedder_app, start_llm_app, start_ray_app, stop_ray_app

log = logging.getLogger("stackserve.lifecycle")


class _LateRayAnomalyEndpoint(RayAnomalyEndpoint):
    """A Ray endpoint whose handle arrives once ``serve.run`` returns."""

    def __init__(self) -> None:
        super().__init__(None)

    async def models(self) -> list[dict]:
        if self.handle is None:
            raise RuntimeError("Serve application is still starting")
        return await super().models()


class _LateLLMEndpoint:
    """The LLM endpoint chosen once Ray is up (``llm_in_gateway``): an engine in this process, or
    the LLMEngine deployment; ``failed`` if neither will come."""

    def __init__(self) -> None:
        self.target: LLMEndpoint | None = None
        self.failed: BaseException | None = None

    def _ready(self) -> LLMEndpoint:
        if self.target is None:
            raise RuntimeError("the LLM is still starting")
        return self.target

    async def info(self) -> EngineInfo:
        return await self._ready().info()

    async def stats(self) -> tuple[int, int, float]:
        return await self._ready().stats()

    async def counters(self) -> dict[str, int]:
        return await self._ready().counters()

    async def health(self) -> None:
        await self._ready().health()

    def generate(self, job: LLMJob, timeout_s: float | None, request_id: str) -> AsyncIterator[Piece]:
        return self._ready().generate(job, timeout_s, request_id)

    async def tokenize(self, job: LLMJob) -> list[int]:
        return await self._ready().tokenize(job)

    async def detokenize(self, ids: list[int]) -> str:
        return await self._ready().detokenize(ids)

    async def close(self) -> None:
        close = getattr(self.target, "close", None)
        if close is not None:
            await close()


@asynccontextmanager
async def running_server(settings: Settings, use_ray: bool = True) -> AsyncIterator[Gateway]:
    """Everything up for the duration of the block; torn down cleanly on exit."""
    extra_models = list(settings.llm.also_serve) if settings.llm.enabled else []
    if not use_ray:
        llm = None
        extra: list[LLMEndpoint] = []
        if settings.llm.enabled:
            # as on the Ray path, an LLM that cannot start leaves only the LLM down
            try:
                llm = await asyncio.to_thread(local_llm_endpoint, settings)
                for model in extra_models:
                    extra.append(await asyncio.to_thread(local_llm_endpoint, settings, model))
            except Exception as exc:
                log.error("the LLM engine failed to start: %s", exc)
        anomaly = local_anomaly_endpoint(settings) if settings.anomaly.enabled else None
        gateway = await start_gateway(settings, anomaly, llm, retrieval_workload(settings), extra_llm_endpoints=extra)
        try:
            yield gateway
        finally:
            await gateway.stop()
        return
    endpoint = _LateRayAnomalyEndpoint() if settings.anomaly.enabled else None
    llm_endpoint = _LateLLMEndpoint() if settings.llm.enabled else None
    extra_endpoints = {model: _LateLLMEndpoint() for model in extra_models}
    embedder = RayEmbedder(asyncio.get_running_loop()) if settings.rag.enabled else None
    gateway = await start_gateway(settings, endpoint, llm_endpoint, retrieval_workload(settings, embedder),
                                  extra_llm_endpoints=list(extra_endpoints.values()))  # fmt: skip
    attachment = RayAttachment(owns_cluster=False)
    try:
        attachment = await asyncio.to_thread(connect_ray, settings)
        if endpoint is not None:
            endpoint.handle = await asyncio.to_thread(start_ray_app, settings, attachment)
        if embedder is not None:
            # before the LLM: retrieval serves while the model loads
            try:
                if in_gateway(settings.rag.embedder.placement, attachment):
                    log.info("embedder in the gateway process (rag.embedder.placement=%s)",
                             settings.rag.embedder.placement)
                    embedder.place_local(await asyncio.to_thread(local_embedder, settings))
                else:
                    embedder.attach(await asyncio.to_thread(start_embedder_app, settings, attachment))
            except Exception as exc:
                log.error("the Embedder application failed to deploy: %s", exc)
                embedder.fail(exc)
        if llm_endpoint is not None:
            # after the anomaly app, so anomaly scoring is SERVING while the model loads; a
            # failure here (e.g. the configured LLM backend is not built) leaves only the LLM down
            try:
                if llm_in_gateway(settings, attachment):
                    log.info("LLM engine in the gateway process (llm.placement=%s)", settings.llm.placement)
                    llm_endpoint.target = await asyncio.to_thread(local_llm_endpoint, settings)
                else:
                    llm_endpoint.target = RayLLMEndpoint(await asyncio.to_thread(start_llm_app, settings, attachment),
                                                         settings.llm.default_timeout_s)
            except Exception as exc:
                log.error("the LLM application failed to deploy: %s", exc)
                llm_endpoint.failed = exc
        for model, late in extra_endpoints.items():  # each its own engine: its own application on Ray
            try:
                if llm_in_gateway(settings, attachment):
                    late.target = await asyncio.to_thread(local_llm_endpoint, settings, model)
                else:
                    late.target = RayLLMEndpoint(await asyncio.to_thread(start_llm_app, settings, attachment, model),
                                                 settings.llm.default_timeout_s)
            except Exception as exc:
                log.error("the LLM application of %s failed to deploy: %s", model, exc)
                late.failed = exc
        yield gateway
    finally:
        if embedder is not None and embedder.handle is None and embedder.local is None and embedder.failed is None:
            embedder.fail(RuntimeError("the server stopped before the Embedder application deployed"))
        await gateway.stop()
        await stop_ray_app(attachment)
