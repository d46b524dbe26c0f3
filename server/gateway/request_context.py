"""Per-call request id, set by the access-log interceptor and read by handlers.

A contextvar, because the interceptor awaits the handler in the same task, so the
id follows the call into coalescing and into the log line without threading it
through every signature.
"""

from __future__ import annotations

import contextvars
import uuid

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("stackserve_request_id", default="")


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str:
    return REQUEST_ID.get()
