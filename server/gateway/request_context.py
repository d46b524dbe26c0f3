"""Per-call request id, set by the access-log interceptor and read by handlers.

A contextvar, because the interceptor awaits the handler in the same task, so the
id follows the call into coalescing and into the log line without threading it
through every signature.
"""

from __future__ import annotations

import contextvars
import uuid

#: a client's x-request-id longer than this is replaced by our own (it goes into every log line)
MAX_REQUEST_ID_LEN = 128
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("stackserve_request_id", default="")
# Extra fields a handler adds to its call's access-log line (token counts, a prompt hash);
# None for calls that add none, so the anomaly hot path pays nothing beyond one lookup.
ACCESS_FIELDS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("stackserve_access_fields", default=None)


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
