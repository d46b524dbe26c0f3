"""Backend failures as the client sees them: what failed and the request id, never the exception.

Ray's exceptions carry actor ids, pids, node IPs and namespaces; an engine's carry stack details.
None of that may reach a client (it maps the deployment for an attacker and means nothing to a
user). The full text goes to the log, one line, under the same request id the client got in its
trailing metadata, so a bug report can still be traced.
"""

from __future__ import annotations

import logging

import grpc

from server.gateway.request_context import current_request_id
from server.protocol.errors import ServingError

log = logging.getLogger("stackserve.gateway")


def failure_status(
    what: str, exc: BaseException | str, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
) -> ServingError:
    """``what`` (a sentence for the client) plus the request id; ``exc`` only in the log."""
    rid = current_request_id()
    detail = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    log.warning("%s", what, extra={"fields": {"request_id": rid, "error": detail[:2000]}})
    return ServingError(code, f"{what} (request id {rid})" if rid else what)
