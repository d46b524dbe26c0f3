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

from server.gateway.ray_errors import CONTROL_TIMEOUT_S, STREAM_SLACK_S, bounded, bounded_stream, from_ray
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

    async def health(self) -> None:
        """Raises when the engine does not make progress (the gateway's health probe)."""
        ...


class LocalLLMEndpoint(AsyncEngine):
    """An engine in this process (its loop thread does the compute): tests, ``serve --no-ray``."""

    async def generate(self, job: LLMJob, timeout_s: float | None, request_id: str) -> AsyncIterator[Piece]:
        async for piece in super().generate(traced(job), timeout_s, request_id):
            yield piece


class RayLLMEndpoint:
    """Calls the LLMEngine deployment through a Ray Serve DeploymentHandle."""

    def __init__(self, handle: Any, default_timeout_s: float = 30.0, control_timeout_s: float = CONTROL_TIMEOUT_S):
        self.handle = handle
        self.control_timeout_s = control_timeout_s
        self.default_timeout_s = default_timeout_s  # a stream's bound when the caller sets no deadline
        self._streaming: tuple[Any, Any] | None = None

    def _stream_handle(self) -> Any:
        if self._streaming is None or self._streaming[0] is not self.handle:
            self._streaming = (self.handle, self.handle.options(stream=True))
        return self._streaming[1]

    async def _control(self, method: str, *args: Any) -> Any:
        call = getattr(self.handle, method).remote(*args)
        return await bounded(call, self.control_timeout_s, f"LLMEngine.{method}")

    async def info(self) -> EngineInfo:
        return await self._control("info")

    async def stats(self) -> tuple[int, int, float]:
        return tuple(await self._control("stats"))  # type: ignore[return-value]

    async def counters(self) -> dict[str, int]:
        return dict(await self._control("counters"))

    async def tokenize(self, job: LLMJob) -> list[int]:
        return list(await self._control("tokenize", job))

    async def detokenize(self, ids: list[int]) -> str:
        return str(await self._control("detokenize", ids))

    async def health(self) -> None:
        await self._control("health")

    async def generate(self, job: LLMJob, timeout_s: float | None, request_id: str) -> AsyncIterator[Piece]:
        """Stream pieces; leaving early (cancel, deadline, error) cancels the replica's generator.
        Ray's exceptions leave as ours (server/gateway/ray_errors.py)."""
        gen = self._stream_handle().generate.remote(traced(job), timeout_s, request_id)
        finished = False
        bound = (timeout_s if timeout_s is not None else self.default_timeout_s) + STREAM_SLACK_S
        try:
            try:
                async for piece in bounded_stream(gen, bound, "LLMEngine.generate"):
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
