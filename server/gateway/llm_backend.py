"""Where generation happens: the LLMEngine deployment (Ray Serve), or an engine in this process.

The gateway's side of the Ray crossing; the replica's side (``stream_job``, ``LLMJob``,
``Piece``) lives with the engine in ``server/llm/serving.py``.

The gateway talks to a backend through ``info`` / ``stats`` / ``generate``;
``RayLLMBackend`` calls the deployment through a DeploymentHandle, ``LocalLLMBackend``
runs an engine in the gateway's process (tests, ``stackserve serve --no-ray``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from server.llm.serving import (
    LLMJob,
    Piece,
    StepTracker,
    engine_info,
    engine_load,
    stream_job,
)

if TYPE_CHECKING:
    from server.llm.engine import LLMEngine


class LLMBackend(Protocol):
    async def info(self) -> dict[str, Any]: ...

    async def stats(self) -> tuple[int, int, float]: ...

    def generate(self, job: LLMJob, timeout_s: float | None, request_id: str) -> AsyncIterator[Piece]: ...


class LocalLLMBackend:
    """An engine in this process (its loop thread does the compute)."""

    def __init__(self, engine: LLMEngine, model_name: str = ""):
        self.engine = engine
        self.steps = StepTracker()
        self._info = engine_info(engine, model_name)

    async def info(self) -> dict[str, Any]:
        return self._info

    async def stats(self) -> tuple[int, int, float]:
        return engine_load(self.engine)

    async def generate(self, job: LLMJob, timeout_s: float | None, request_id: str) -> AsyncIterator[Piece]:
        async for piece in stream_job(self.engine, job, timeout_s, request_id, self.steps):
            yield piece

    async def close(self) -> None:
        await asyncio.to_thread(self.engine.shutdown)


class RayLLMBackend:
    """Calls the LLMEngine deployment through a Ray Serve DeploymentHandle."""

    def __init__(self, handle: Any):
        self.handle = handle
        self._streaming: tuple[Any, Any] | None = None

    def _stream_handle(self) -> Any:
        if self._streaming is None or self._streaming[0] is not self.handle:
            self._streaming = (self.handle, self.handle.options(stream=True))
        return self._streaming[1]

    async def info(self) -> dict[str, Any]:
        return await self.handle.info.remote()

    async def stats(self) -> tuple[int, int, float]:
        return tuple(await self.handle.stats.remote())  # type: ignore[return-value]

    async def generate(self, job: LLMJob, timeout_s: float | None, request_id: str) -> AsyncIterator[Piece]:
        """Stream pieces; leaving early (cancel, deadline, error) cancels the replica's generator."""
        gen = self._stream_handle().generate.remote(job, timeout_s, request_id)
        finished = False
        try:
            async for piece in gen:
                finished = piece.finish_reason is not None
                yield piece
        finally:
            if not finished:
                gen.cancel()
