"""Structured JSON logs: one line per request, with the request id.

Prompts, responses, API keys and raw features never appear in logs; where a payload matters
for debugging it is logged as a short keyed hash (``payload_hash``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import secrets
import sys
import threading
import time
from pathlib import Path
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


# Keys the payload hashes (server/security/keyed_hash.py says why). Until the gateway installs the
# deployment's key, a random one: hashes then match within this process only, never across.
_HASH_KEY = secrets.token_bytes(32)


def install_hash_key(key: bytes) -> None:
    global _HASH_KEY
    _HASH_KEY = bytes(key)


def payload_hasher() -> Any:
    """An incremental keyed hash (a response hashed piece by piece as it streams)."""
    return hashlib.blake2b(digest_size=8, key=_HASH_KEY)


def payload_hash(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    h = payload_hasher()
    h.update(data)
    return h.hexdigest()


def log_event(logger: str, msg: str, **fields: Any) -> None:
    logging.getLogger(logger).info(msg, extra={"fields": fields})


class AccessLog:
    """One JSON line per request, written in bulk, off the event loop.

    Going through ``logging`` for every request cost ~8% of the gateway's CPU at
    1,000 req/s; lines are formatted directly and handed over every ``interval_s`` (and at
    shutdown) to a writer thread, one write call per batch. The write (and a file's rotation: a
    close, renames, an open) happens in that thread, so a slow disk never stalls the loop.
    """

    def __init__(self, stream: Any = None, interval_s: float = 0.2, max_lines: int = 2048):
        self.stream = stream
        self.interval_s = interval_s
        self.max_lines = max_lines
        self.lines: list[str] = []
        self.enabled = True
        self._last_flush = time.monotonic()
        self._batches: queue.Queue[str] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) >= self.max_lines or time.monotonic() - self._last_flush >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered lines to the writer thread (returns at once; ``sync`` waits for them)."""
        self._last_flush = time.monotonic()
        if not self.lines:
            return
        text = "\n".join(self.lines) + "\n"
        self.lines.clear()
        with self._lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_batches, name="access-log", daemon=True)
                self._writer.start()
        self._batches.put(text)

    def sync(self) -> None:
        """Flush, and return once every handed-over line is written (shutdown; tests)."""
        self.flush()
        self._batches.join()

    def _write_batches(self) -> None:
        while True:
            text = self._batches.get()
            try:
                stream = self.stream or sys.stderr
                stream.write(text)
                stream.flush()
            except (OSError, ValueError):  # closed stream at interpreter exit
                pass
            finally:
                self._batches.task_done()


class RotatingFile:
    """An append-only file that rolls over by size (``access.log`` -> ``access.log.1`` ... ``.N``,
    the oldest dropped), so a long-running gateway never fills its disk with access lines. Lines
    are never split across files: a flush's text goes whole into the current file."""

    def __init__(self, path: str | os.PathLike, max_bytes: int, backups: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open across flushes

    def write(self, text: str) -> None:
        if self._file.tell() > 0 and self._file.tell() + len(text) > self.max_bytes:
            self._rotate()
        self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def _rotate(self) -> None:
        self._file.close()
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115


ACCESS = AccessLog()


def access_log(
    method: str, code: str, started: float, request_id: str, extra: dict[str, Any] | None = None
) -> None:
    """``extra``: fields the handler added (LLM: model, prompt hash, token counts, finish reason)."""
    if not ACCESS.enabled:
        return
    now = time.time()
    duration_ms = (time.perf_counter() - started) * 1e3
    more = "".join(f", {json.dumps(k)}: {json.dumps(v, default=str)}" for k, v in extra.items()) if extra else ""
    ACCESS.write(
        f'{{"ts": {now:.6f}, "level": "info", "logger": "{ACCESS_LOGGER}", "msg": "rpc", '
        f'"method": {json.dumps(method)}, "code": "{code}", "duration_ms": {duration_ms:.3f}, '
        f'"request_id": {json.dumps(request_id)}{more}}}'
    )
