"""Access log and metrics for every RPC: count by method and code, latency, in flight.

Also assigns the request id (or accepts the client's ``x-request-id``) and sends
it back as initial metadata, so a client can quote it in a bug report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from server.gateway.request_context import REQUEST_ID, new_request_id
from server.observability.logs import access_log
from server.observability.metrics import GRPC_IN_FLIGHT, GRPC_LATENCY, GRPC_REQUESTS

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


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method
        metadata = dict(details.invocation_metadata or ())
        given_id = metadata.get("x-request-id")

        def begin(context: grpc.aio.ServicerContext) -> tuple[float, Any]:
            rid = given_id if isinstance(given_id, str) and 0 < len(given_id) <= 128 else new_request_id()
            token = REQUEST_ID.set(rid)
            GRPC_IN_FLIGHT.labels(method).inc()
            return time.perf_counter(), token

        def end(context: grpc.aio.ServicerContext, started: float, token: Any, exc: BaseException | None) -> None:
            code = _code_of(context, exc)
            GRPC_IN_FLIGHT.labels(method).dec()
            GRPC_REQUESTS.labels(method, code).inc()
            GRPC_LATENCY.labels(method).observe(time.perf_counter() - started)
            access_log(method, code, started, REQUEST_ID.get())
            if exc is not None and code == "UNKNOWN":
                log.error("unhandled error in %s", method, exc_info=exc)
            with contextlib.suppress(ValueError):  # reset from another context: harmless
                REQUEST_ID.reset(token)

        async def send_id(context: grpc.aio.ServicerContext) -> None:
            with contextlib.suppress(Exception):  # already sent: the id is still in the log
                await context.send_initial_metadata((("x-request-id", REQUEST_ID.get()),))

        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started, token = begin(context)
                exc = None
                try:
                    await send_id(context)
                    return await inner_uu(request, context)
                except BaseException as e:
                    exc = e
                    raise
                finally:
                    end(context, started, token, exc)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )

        def wrap_streaming(inner: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
            async def streaming(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                started, token = begin(context)
                exc = None
                try:
                    await send_id(context)
                    async for response in inner(request_or_iterator, context):
                        yield response
                except BaseException as e:
                    exc = e
                    raise
                finally:
                    end(context, started, token, exc)

            return streaming

        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                wrap_streaming(handler.stream_stream), handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                wrap_streaming(handler.unary_stream), handler.request_deserializer, handler.response_serializer
            )
        return handler  # stream-unary: no such RPC in our services; pass through
