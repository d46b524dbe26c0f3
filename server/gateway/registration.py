"""Register servicers from proto descriptors with deserializers that cannot crash.

The generated ``add_*Servicer_to_server`` uses ``Message.FromString`` directly: a
body of garbage bytes then fails inside gRPC and the client gets a bare INTERNAL.
Here a body that does not parse becomes a ``DecodeFailure`` value that the
handler turns into INVALID_ARGUMENT with the parser's reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    type_name: str
    reason: str


def _safe_deserializer(cls: type) -> Any:
    name = cls.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            return DecodeFailure(name, str(exc) or "malformed protobuf")

    return deserialize


def add_service(server: grpc.aio.Server, service: ServiceDescriptor, servicer: object) -> None:
    """Bind every RPC of ``service`` to the servicer method of the same name."""
    handlers = {}
    for method in service.methods:
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        behavior = getattr(servicer, method.name)
        make = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(
            behavior,
            request_deserializer=_safe_deserializer(request_cls),
            response_serializer=response_cls.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
