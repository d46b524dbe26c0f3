"""API keys on every gRPC call but health checks: the tenant's key, its services, its rate.

Runs inside the observability interceptor, so a refused call is counted and logged (one line, with
its code) like any other. The refusal is decided when the call arrives, before its body is read: an
unauthenticated client cannot make the gateway parse anything. An accepted call's access-log line
names the tenant (never the key), and its LLM generations draw on the tenant's token budget
(``TOKEN_BUDGET``, set for the call's task).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from server.gateway.interceptors.rewrap import Streaming, Unary, rewrap
from server.gateway.request_context import access_fields
from server.protocol.errors import ServingError
from server.security.access_policy import AccessPolicy, Tenant
from server.security.api_keys import key_from_headers
from server.security.shared_limits import TOKEN_BUDGET


def _refusal(err: ServingError) -> grpc.RpcMethodHandler:
    async def refuse(request_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(err.code, err.details)
        yield  # a streaming handler: answers without reading the request

    return grpc.stream_stream_rpc_method_handler(refuse)


def _with_tenant(handler: grpc.RpcMethodHandler, tenant: Tenant) -> grpc.RpcMethodHandler:
    """The handler, recording the tenant in the call's access-log fields and opening the call's
    claim on its token budget first (each call runs in a task of its own: neither leaks)."""

    def enter() -> None:
        access_fields()["tenant"] = tenant.name
        if tenant.tokens is not None:
            TOKEN_BUDGET.set(tenant.token_budget())

    def unary_of(inner: Unary) -> Unary:
        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            enter()
            return await inner(request, context)

        return unary_unary

    def streaming_of(inner: Streaming) -> Streaming:
        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            enter()
            async for response in inner(request, context):
                yield response

        return streaming

    return rewrap(handler, unary_of, streaming_of)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, policy: AccessPolicy) -> None:
        self.policy = policy
        self._cache: dict[tuple[str, int, str], grpc.RpcMethodHandler] = {}
        self._refusals: dict[tuple[grpc.StatusCode, str], grpc.RpcMethodHandler] = {}

    def _refusal(self, err: ServingError) -> grpc.RpcMethodHandler:
        """One handler per distinct refusal, kept: the outer interceptor caches per handler object."""
        key = (err.code, err.details)
        handler = self._refusals.get(key)
        if handler is None:
            if len(self._refusals) >= 512:
                self._refusals.clear()
            handler = self._refusals[key] = _refusal(err)
        return handler

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None  # no such method: UNIMPLEMENTED whoever asks (the outer interceptor answers)
        service = details.method.lstrip("/").partition("/")[0]
        try:
            tenant: Tenant | None = await self.policy.admit(key_from_headers(details.invocation_metadata), service)
        except ServingError as err:
            return self._refusal(err)
        if tenant is None:
            return handler
        key = (details.method, id(handler), tenant.name)
        wrapped = self._cache.get(key)
        if wrapped is None:
            wrapped = self._cache[key] = _with_tenant(handler, tenant)
        return wrapped
