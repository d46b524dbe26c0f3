"""Server credentials from ``security.tls``: the same files for gRPC and for the HTTP API.

With ``client_ca`` set both require a client certificate signed by it (mutual TLS); the handshake
fails for any other client, before a request is read.
"""

from __future__ import annotations

import ssl
from typing import Any

import grpc

from server.config import TlsConfig


def _read(path: Any, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"security.tls.{what}: cannot read {path}: {exc.strerror}") from None


def grpc_credentials(cfg: TlsConfig) -> grpc.ServerCredentials | None:
    """None when TLS is off (the port is then plaintext)."""
    if not cfg.enabled:
        return None
    pair = (_read(cfg.key, "key"), _read(cfg.cert, "cert"))
    ca = _read(cfg.client_ca, "client_ca") if cfg.client_ca is not None else None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


def uvicorn_options(cfg: TlsConfig) -> dict[str, Any]:
    """uvicorn.Config keyword arguments for the same certificate (empty when TLS is off)."""
    if not cfg.enabled:
        return {}
    for what in ("cert", "key", "client_ca"):
        path = getattr(cfg, what)
        if path is not None:
            _read(path, what)  # fail at start with the field's name, not inside uvicorn
    options: dict[str, Any] = {"ssl_certfile": str(cfg.cert), "ssl_keyfile": str(cfg.key)}
    if cfg.client_ca is not None:
        options.update(ssl_ca_certs=str(cfg.client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options
