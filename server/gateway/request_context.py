"""Per-call request id, set by the access-log interceptor and read by handlers.

A contextvar, because the interceptor awaits the handler in the same task, so the
id follows the call into coalescing and into the log line without threading it
through every signature.
"""

from __future__ import annotations

import contextvars
import time
import uuid

#: a client's x-request-id longer than this is replaced by our own (it goes into every log line)
MAX_REQUEST_ID_LEN = 128
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("stackserve_request_id", default="")
# Extra fields a handler adds to its call's access-log line (token counts, a prompt hash);
# None for calls that add none, so the anomaly hot path pays nothing beyond one lookup.
ACCESS_FIELDS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("stackserve_access_fields", default=None)


# When the caller gives up (``time.monotonic()`` seconds; None: no deadline): every remote call and
# cross-thread wait made for the call is bounded by what is left of it, not only by a configured
# bound (a replica that hangs then costs the caller its own deadline, no more).
DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("stackserve_deadline", default=None)


def set_deadline(time_remaining: float | None) -> contextvars.Token:
    """Record the current call's deadline from gRPC's ``time_remaining()`` (None: the caller set none)."""
    return DEADLINE.set(None if time_remaining is None else time.monotonic() + time_remaining)


def time_left(bound_s: float) -> float:
    """The longest the current call may still wait: ``bound_s`` or what is left of its deadline,
    whichever is shorter (never below 0)."""
    deadline = DEADLINE.get()
    if deadline is None:
        return bound_s
    return max(0.0, min(bound_s, deadline - time.monotonic()))


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str:
    return REQUEST_ID.get()


def access_fields() -> dict:
    """The dict of extra access-log fields for the current call (created on first use)."""
    fields = ACCESS_FIELDS.get()
    if fields is None:
        fields = {}
        ACCESS_FIELDS.set(fields)
    return fields
