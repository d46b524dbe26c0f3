"""Register servicers from proto descriptors with deserializers that cannot crash.

The generated ``add_*Servicer_to_server`` uses ``Message.FromString`` directly: a
body of garbage bytes then fails inside gRPC and the client gets a bare INTERNAL.
Here a body that does not parse becomes a ``DecodeFailure`` value that the
handler turns into INVALID_ARGUMENT with the parser's reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, ServiceDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from server.protocol.errors import ServingError, exhausted, invalid


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    type_name: str
    reason: str
    data: bytes = field(default=b"", repr=False)  # the body, so a handler can say which field was bad
    descriptor: Descriptor | None = field(default=None, repr=False)
    too_large: bool = False  # over the gateway's message limit: RESOURCE_EXHAUSTED, not parsed at all


def decode_error(failure: DecodeFailure, where: str = "request") -> ServingError:
    """INVALID_ARGUMENT for a body that did not parse, naming the string field that is not UTF-8
    (``entity_keys[2]``, ``messages[1].content``) when that is why: the one error every service
    gives for it. ``where`` prefixes the path for a streamed element (``documents[3]``)."""
    if failure.too_large:
        return exhausted(failure.reason)
    bad = bad_utf8_field(failure.descriptor, failure.data) if failure.data and failure.descriptor else None
    if bad is not None:
        name = bad if where == "request" else f"{where}.{bad}"
        return invalid(name, "is not valid UTF-8 (string fields must be UTF-8 text)")
    return invalid(where, f"body is not a valid {failure.type_name}: {failure.reason}")


def check_decoded(request: Any) -> None:
    """A body that did not parse (``decode_error``), or one with fields this server's proto does not
    have (an older server than the client's proto: refused, never silently dropped)."""
    if isinstance(request, DecodeFailure):
        raise decode_error(request)
    unknown = UnknownFieldSet(request)
    if len(unknown):
        numbers = sorted({f.field_number for f in unknown})
        raise invalid(
            "request", f"unknown field number(s) {numbers} in {request.DESCRIPTOR.full_name}; check the client's proto"
        )


def _safe_deserializer(cls: type, max_bytes: int | None = None) -> Any:
    descriptor = cls.DESCRIPTOR
    name = descriptor.full_name

    def deserialize(data: bytes) -> Any:
        if max_bytes is not None and len(data) > max_bytes:
            reason = f"the request is {len(data)} bytes; the limit is {max_bytes} (gateway.max_message_bytes)"
            return DecodeFailure(name, reason, too_large=True)
        try:
            return cls.FromString(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            return DecodeFailure(name, str(exc) or "malformed protobuf", data, descriptor)

    return deserialize


def add_service(
    server: grpc.aio.Server, service: ServiceDescriptor, servicer: object, max_message_bytes: int | None = None
) -> None:
    """Bind every RPC of ``service`` to the servicer method of the same name.

    ``max_message_bytes``: bodies over it become a RESOURCE_EXHAUSTED the handler answers (so the
    call is logged and counted like any other), the server's own gRPC-core limit being set higher."""
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
            request_deserializer=_safe_deserializer(request_cls, max_message_bytes),
            response_serializer=response_cls.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = data[i]  # IndexError on a truncated body: the caller gives up
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def bad_utf8_field(descriptor: Descriptor, data: bytes, prefix: str = "") -> str | None:
    """The path (``messages[1].content``) of the first string field whose bytes are not UTF-8.

    protobuf rejects such a body as a whole ("String field had bad UTF-8") without saying
    which field; this walks the wire format once more, on the failure path only, so the
    client's INVALID_ARGUMENT can name it. None when no string field is at fault.
    """
    seen: dict[int, int] = {}
    i, n = 0, len(data)
    try:
        while i < n:
            key, i = _varint(data, i)
            number, wire_type = key >> 3, key & 7
            if wire_type == 0:
                _, i = _varint(data, i)
            elif wire_type == 1:
                i += 8
            elif wire_type == 5:
                i += 4
            elif wire_type == 2:
                length, i = _varint(data, i)
                chunk, i = data[i : i + length], i + length
                fd = descriptor.fields_by_number.get(number)
                if fd is None or fd.type not in (fd.TYPE_STRING, fd.TYPE_MESSAGE):
                    continue
                name = prefix + fd.name
                if fd.is_repeated:
                    seen[number] = seen.get(number, -1) + 1
                    name += f"[{seen[number]}]"
                if fd.type == fd.TYPE_STRING:
                    try:
                        chunk.decode("utf-8")
                    except UnicodeDecodeError:
                        return name
                else:
                    found = bad_utf8_field(fd.message_type, chunk, name + ".")
                    if found:
                        return found
            else:  # groups (3, 4) and invalid wire types: not ours to diagnose
                return None
    except (IndexError, ValueError):
        return None
    return None
