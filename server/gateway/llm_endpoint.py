"""Where generation happens: the LLMEngine deployment (Ray Serve), or an engine in this process.

The gateway's side of the Ray crossing; the replica's side (``stream_job``, ``LLMJob``,
``Piece``) lives with the engine in ``server/llm/serving.py``.

The gateway talks to an endpoint through ``info`` / ``stats`` / ``generate``;
``RayLLMEndpoint`` calls the deployment through a DeploymentHandle, ``LocalLLMEndpoint``
runs an engine in the gateway's process (tests, ``stackserve serve --no-ray``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any, Protocol

from server.gateway.ray_errors import from_ray
from server.llm.serving import AsyncEngine, EngineInfo, LLMJob, Piece
from server.observability import tracing


def traced(job: LLMJob) -> LLMJob:
    """The job with the current RPC span's trace context, when tracing is on."""
    ctx = tracing.carrier()
    return job if ctx is None else dataclasses.replace(job, trace_context=tuple(ctx.items()))


class LLMEndpoint(Protocol):
    async def info(self) -> EngineInfo: ...

    async def stats(self) -> tuple[int, int, float]: ...

    async def counters(self) -> dict[str, int]: ...

    def generate(self, job: LLMJob, timeout_s: float | None, request_id: str) -> AsyncIterator[Piece]: ...

    async def tokenize(self, job: LLMJob) -> list[int]: ...

    async def detokenize(self, ids: list[int]) -> str: ...


class LocalLLMEndpoint(AsyncEngine):
    """An engine in this process (its loop thread does the compute): tests, ``serve --no-ray``."""

    async def generate(self, job: LLMJob, timeout_s: float | None, request_id: str) -> AsyncIterator[Piece]:
        async for piece in super().generate(traced(job), timeout_s, request_id):
            yield piece


class RayLLMEndpoint:
    """Calls the LLMEngine deployment through a Ray Serve DeploymentHandle."""

    def __init__(self, handle: Any):
        self.handle = handle
        self._streaming: tuple[Any, Any] | None = None

    def _stream_handle(self) -> Any:
        if self._streaming is None or self._streaming[0] is not self.handle:
            self._streaming = (self.handle, self.handle.options(stream=True))
        return self._streaming[1]

    async def info(self) -> EngineInfo:
        try:
            return await self.handle.info.remote()
        except Exception as exc:
            raise from_ray(exc) from exc

    async def stats(self) -> tuple[int, int, float]:
        try:
            return tuple(await self.handle.stats.remote())  # type: ignore[return-value]
        except Exception as exc:
            raise from_ray(exc) from exc

    async def counters(self) -> dict[str, int]:
        try:
            return dict(await self.handle.counters.remote())
        except Exception as exc:
            raise from_ray(exc) from exc

    async def tokenize(self, job: LLMJob) -> list[int]:
        try:
            return list(await self.handle.tokenize.remote(job))
        except Exception as exc:
            raise from_ray(exc) from exc

    async def detokenize(self, ids: list[int]) -> str:
        try:
            return str(await self.handle.detokenize.remote(ids))
        except Exception as exc:
            raise from_ray(exc) from exc

    async def generate(self, job: LLMJob, timeout_s: float | None, request_id: str) -> AsyncIterator[Piece]:
        """Stream pieces; leaving early (cancel, deadline, error) cancels the replica's generator.
        Ray's exceptions leave as ours (server/gateway/ray_errors.py)."""
        gen = self._stream_handle().generate.remote(traced(job), timeout_s, request_id)
        finished = False
        try:
            try:
                async for piece in gen:
                    if piece.refusal is not None:
                        finished = True
                        raise piece.refusal
                    finished = piece.finish_reason is not None
                    yield piece
            except Exception as exc:
                raise from_ray(exc) from exc
        finally:
            if not finished:
                gen.cancel()
