"""Structured JSON logs: one line per request, with the request id.

Prompts, responses and raw features never appear in logs; where a payload matters
for debugging it is logged as a short hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from typing import Any

ACCESS_LOGGER = "stackserve.access"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}))
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for every stackserve logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("stackserve")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def payload_hash(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def log_event(logger: str, msg: str, **fields: Any) -> None:
    logging.getLogger(logger).info(msg, extra={"fields": fields})


def access_log(method: str, code: str, started: float, request_id: str, **fields: Any) -> None:
    log_event(
        ACCESS_LOGGER,
        "rpc",
        method=method,
        code=code,
        duration_ms=round((time.perf_counter() - started) * 1e3, 3),
        request_id=request_id,
        **fields,
    )
