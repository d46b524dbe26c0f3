"""LLMEngine deployment: one continuous-batching engine (server/llm) per replica, streamed out.

Thin by design (docs/design/llm_serving.md): the engine does the work in its own thread; ``stream_job``
(server/llm/serving.py) submits a checked job and yields merged pieces. The gateway
calls ``generate`` through ``handle.options(stream=True)``; when it cancels the response
generator (client cancel, deadline), Serve raises CancelledError inside ``generate``, whose
``finally`` aborts the request in the engine, freeing its KV-cache slot within one step.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from ray import serve

from server.config import Settings
from server.llm.errors import EngineStoppedError, LLMRequestError, WaitingQueueFullError
from server.llm.serving import AsyncEngine, EngineInfo, LLMJob, Piece
from server.observability import tracing

log = logging.getLogger("stackserve.llm")
REFUSALS = (LLMRequestError, WaitingQueueFullError, EngineStoppedError)


@serve.deployment(name="LLMEngine", health_check_period_s=10)
class LLMEngineDeployment:
    def __init__(self, settings_json: str):
        from server.llm.engine import LLMEngine

        self.settings = Settings.model_validate_json(settings_json)
        t = self.settings.tracing
        if t.exporter != "none":  # the engine's spans are made in this replica's process
            tracing.configure(t.exporter, t.otlp_endpoint, t.service_name)
        self.served = AsyncEngine(LLMEngine(self.settings.llm).start(), self.settings.llm.model_name)
        self.engine = self.served.engine
        log.info("LLM engine ready: %s", self.engine.backend_name)

    async def info(self) -> EngineInfo:
        return await self.served.info()

    async def stats(self) -> tuple[int, int, float]:
        return await self.served.stats()

    async def counters(self) -> dict[str, int]:
        return await self.served.counters()

    async def tokenize(self, job: LLMJob) -> list[int]:
        return await self.served.tokenize(job)

    async def detokenize(self, ids: list[int]) -> str:
        return await self.served.detokenize(ids)

    async def generate(self, job: LLMJob, timeout_s: float | None, request_id: str) -> AsyncIterator[Piece]:
        """Stream merged pieces of one request (call with ``handle.options(stream=True)``)."""
        try:
            async for piece in self.served.generate(job, timeout_s, request_id):
                yield piece
        except REFUSALS as exc:  # one log line, not Ray's traceback: a refusal is routine
            log.info("request refused: %s", exc, extra={"fields": {"request_id": request_id}})
            yield Piece.refused(exc)

    async def health(self) -> None:
        """The gateway's probe: raises when the engine is stopped or wedged (not only when dead)."""
        await self.served.health()

    def check_health(self) -> None:
        """Serve's probe: a wedged engine fails it too, so Serve replaces the replica."""
        self.engine.check_progress()

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()
