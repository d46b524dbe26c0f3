"""A method handler with its behavior wrapped, its kind and serializers kept: what every interceptor
that acts per call (observability, the tenant's access-log field) does to the handler it is given."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

Unary = Callable[[Any, grpc.aio.ServicerContext], Any]
Streaming = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]


def rewrap(
    handler: grpc.RpcMethodHandler, unary: Callable[[Unary], Unary], streaming: Callable[[Streaming], Streaming]
) -> grpc.RpcMethodHandler:
    """``unary(inner)`` for a unary-unary handler, ``streaming(inner)`` for a server- or bidi-streaming
    one; a stream-unary handler (none in our services) is returned as it is."""
    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), des, ser)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), des, ser)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), des, ser)
    return handler
