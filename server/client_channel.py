"""How a client reaches the gateway: plaintext or TLS (mutual, with a client certificate), and an
API key sent on every call.

The key travels as ``authorization: Bearer <key>`` metadata added by a channel interceptor, so it
works on plaintext loopback channels too (gRPC's own call credentials insist on TLS). Everything
can come from the environment, so the CLI and scripts need no flags on a secured deployment:
``STACKSERVE_API_KEY``, ``STACKSERVE_TLS_CA`` (the CA that signed the server's certificate),
``STACKSERVE_TLS_CERT`` / ``STACKSERVE_TLS_KEY`` (the client's own, for mutual TLS).
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc


@dataclass(frozen=True, slots=True)
class ChannelSecurity:
    api_key: str | None = None
    ca: Path | None = None  # set: TLS, verifying the server against this CA
    cert: Path | None = None  # with key: the client's certificate (mutual TLS)
    key: Path | None = None
    server_name: str | None = None  # the name to check the server certificate for, if not the host

    @classmethod
    def from_env(cls) -> ChannelSecurity:
        def path(var: str) -> Path | None:
            value = os.environ.get(var, "").strip()
            return Path(value) if value else None

        return cls(os.environ.get("STACKSERVE_API_KEY", "").strip() or None, path("STACKSERVE_TLS_CA"),
                   path("STACKSERVE_TLS_CERT"), path("STACKSERVE_TLS_KEY"))

    def credentials(self) -> grpc.ChannelCredentials | None:
        if self.ca is None:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=self.key.read_bytes() if self.key else None,
            certificate_chain=self.cert.read_bytes() if self.cert else None,
        )

    def options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),) if self.api_key else ()


def _with_metadata(details: Any, extra: tuple[tuple[str, str], ...], make: Any) -> Any:
    metadata = (*(details.metadata or ()), *extra)
    return make(details.method, details.timeout, metadata, details.credentials, details.wait_for_ready)


class _SyncDetails(
    collections.namedtuple("_SyncDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready")),
    grpc.ClientCallDetails,
):
    pass


class _SyncKey(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
               grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    def __init__(self, extra: tuple[tuple[str, str], ...]) -> None:
        self.extra = extra

    def _call(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(_with_metadata(details, self.extra, _SyncDetails), request)

    intercept_unary_unary = intercept_unary_stream = _call
    intercept_stream_unary = intercept_stream_stream = _call


def _aio_key_interceptors(extra: tuple[tuple[str, str], ...]) -> list[Any]:
    async def call(self: Any, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_metadata(details, extra, grpc.aio.ClientCallDetails), request)

    bases = (grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor,
             grpc.aio.StreamUnaryClientInterceptor, grpc.aio.StreamStreamClientInterceptor)
    methods = ("intercept_unary_unary", "intercept_unary_stream", "intercept_stream_unary", "intercept_stream_stream")
    # one class per call type: grpc.aio files an interceptor under the first kind it is an instance
    # of, so one object of all four kinds would see unary-unary calls only
    pairs = enumerate(zip(bases, methods, strict=True))
    return [type(f"_AioKey{i}", (base,), {name: call})() for i, (base, name) in pairs]


def sync_channel(address: str, options: list[tuple[str, Any]], security: ChannelSecurity) -> grpc.Channel:
    creds = security.credentials()
    options = [*options, *security.options()]
    channel = (grpc.secure_channel(address, creds, options=options) if creds is not None
               else grpc.insecure_channel(address, options=options))
    extra = security.metadata()
    return grpc.intercept_channel(channel, _SyncKey(extra)) if extra else channel


def aio_channel(address: str, options: list[tuple[str, Any]], security: ChannelSecurity) -> grpc.aio.Channel:
    creds = security.credentials()
    options = [*options, *security.options()]
    extra = security.metadata()
    interceptors = _aio_key_interceptors(extra) if extra else None
    if creds is not None:
        return grpc.aio.secure_channel(address, creds, options=options, interceptors=interceptors)
    return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
