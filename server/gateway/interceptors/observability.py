"""Access log and metrics for every RPC: count by method and code, latency, in flight.

Records whether each call met the client's own latency budget (an ``x-latency-budget-ms`` header,
else its gRPC deadline). Also assigns the request id (or accepts the client's ``x-request-id``) and
sends it back as trailing metadata, so a client can quote it in a bug report (trailing, not
initial: initial metadata costs an extra send per call on the hot path).

Wrapped handlers are built once per method and cached: grpc.aio calls the
interceptor on every RPC, and rebuilding closures and handler objects per call
was measurable at thousands of calls per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from server.gateway.interceptors.rewrap import Streaming, Unary, rewrap
from server.gateway.request_context import (
    ACCESS_FIELDS,
    DEADLINE,
    MAX_REQUEST_ID_LEN,
    REQUEST_ID,
    new_request_id,
    set_deadline,
)
from server.observability import tracing
from server.observability.logs import access_log
from server.observability.metrics import GRPC_BUDGET, GRPC_IN_FLIGHT, GRPC_LATENCY, GRPC_REQUESTS

log = logging.getLogger("stackserve.gateway")


def _code_of(context: grpc.aio.ServicerContext, exc: BaseException | None) -> str:
    """The status the client sees: what the handler set or aborted with, else OK/UNKNOWN."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return next((m.name for m in grpc.StatusCode if m.value[0] == code), "UNKNOWN")
    if exc is None:
        return "OK"
    return "CANCELLED" if isinstance(exc, asyncio.CancelledError) else "UNKNOWN"


def _request_id_and_budget(context: grpc.aio.ServicerContext) -> tuple[str, float | None]:
    """The client's ``x-request-id`` (or a new one) and its own latency budget in seconds: an
    ``x-latency-budget-ms`` header (a latency class the client holds us to), else the gRPC deadline."""
    rid, budget = None, None
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and isinstance(value, str) and 0 < len(value) <= MAX_REQUEST_ID_LEN:
            rid = value
        elif key == "x-latency-budget-ms" and isinstance(value, str):
            try:
                ms = float(value)
            except ValueError:
                continue
            if 0 < ms < 1e9:
                budget = ms / 1e3
    if budget is None:
        budget = context.time_remaining()
    return rid or new_request_id(), budget


class _Observed:
    """Metrics children resolved once per method; begin/end bracket every call."""

    def __init__(self, method: str):
        self.method = method
        self.in_flight = GRPC_IN_FLIGHT.labels(method)
        self.latency = GRPC_LATENCY.labels(method)
        self.by_code: dict[str, Any] = {}
        self.budget = {met: GRPC_BUDGET.labels(method, met) for met in ("true", "false")}

    def begin(self, context: grpc.aio.ServicerContext) -> tuple[float, tuple[Any, Any, float | None, Any]]:
        rid, budget = _request_id_and_budget(context)
        token = (REQUEST_ID.set(rid), ACCESS_FIELDS.set(None), budget, tracing.start_rpc_span(self.method, rid),
                 set_deadline(context.time_remaining()))
        context.set_trailing_metadata((("x-request-id", rid),))
        self.in_flight.inc()
        return time.perf_counter(), token

    def end(self, context: grpc.aio.ServicerContext, started: float, token: Any, exc: BaseException | None) -> None:
        code = _code_of(context, exc)
        self.in_flight.dec()
        counter = self.by_code.get(code)
        if counter is None:
            counter = self.by_code[code] = GRPC_REQUESTS.labels(self.method, code)
        counter.inc()
        elapsed = time.perf_counter() - started
        self.latency.observe(elapsed)
        budget = token[2]
        tracing.end_rpc_span(token[3], code)
        if budget is not None and code != "CANCELLED":
            self.budget["true" if code != "DEADLINE_EXCEEDED" and elapsed <= budget else "false"].inc()
        access_log(self.method, code, started, REQUEST_ID.get(), ACCESS_FIELDS.get())
        rid_token, fields_token, _, _, deadline_token = token
        with contextlib.suppress(ValueError):  # reset from another context: harmless
            REQUEST_ID.reset(rid_token)
        with contextlib.suppress(ValueError):
            DEADLINE.reset(deadline_token)
        with contextlib.suppress(ValueError):
            ACCESS_FIELDS.reset(fields_token)


async def _hide_unexpected(exc: Exception, context: grpc.aio.ServicerContext, method: str) -> None:
    """A handler's unexpected exception as INTERNAL with the request id: left alone, grpc.aio
    would send the exception's class and text to the client. Aborts (the handlers' own statuses)
    pass through."""
    if isinstance(exc, grpc.aio.AbortError):
        return
    rid = REQUEST_ID.get()
    log.error("unhandled error in %s", method, exc_info=exc, extra={"fields": {"request_id": rid}})
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {rid})")


async def _unimplemented(request_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    """The answer to a method no service has, given here rather than by gRPC core so that it is
    counted and logged like every other call (under one label: the names are the caller's)."""
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no such method on this server")
    yield  # an async generator: a streaming handler, which reads nothing before answering


UNKNOWN_METHOD = "<unknown method>"
MAX_CACHED_HANDLERS = 4096  # services' methods, times the access policy's few refusal handlers


def _wrap(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    obs = _Observed(method)

    def unary_of(inner: Unary) -> Unary:
        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started, token = obs.begin(context)
            exc = None
            try:
                return await inner(request, context)
            except Exception as e:
                exc = e
                await _hide_unexpected(e, context, obs.method)
                raise
            except BaseException as e:
                exc = e
                raise
            finally:
                obs.end(context, started, token, exc)

        return unary_unary

    def streaming_of(inner: Streaming) -> Streaming:
        async def streaming(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started, token = obs.begin(context)
            exc = None
            try:
                async for response in inner(request_or_iterator, context):
                    yield response
            except Exception as e:
                exc = e
                await _hide_unexpected(e, context, obs.method)
                raise
            except BaseException as e:
                exc = e
                raise
            finally:
                obs.end(context, started, token, exc)

        return streaming

    return rewrap(handler, unary_of, streaming_of)  # stream-unary (none of ours) passes unobserved


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        # (handler, wrapped) by (method, id(handler)): the handler is kept, so its id stays its own
        self._cache: dict[tuple[str, int], tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}
        self._unknown = _wrap(grpc.stream_stream_rpc_method_handler(_unimplemented), UNKNOWN_METHOD)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return self._unknown
        key = (details.method, id(handler))
        entry = self._cache.get(key)
        if entry is None or entry[0] is not handler:  # an id can be reused once its object is freed
            if len(self._cache) >= MAX_CACHED_HANDLERS:
                self._cache.clear()
            entry = self._cache[key] = (handler, _wrap(handler, details.method))
        return entry[1]
