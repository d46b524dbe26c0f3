"""PostgreSQL connections for the pgvector store: the optional driver (psycopg and pgvector's
adapters, the ``pgvector`` extra), a DSN safe to print, and a small pool of reader connections.
Its own module so that the store holds only the store's logic."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:  # the optional `pgvector` extra: this module imports without it and says what is missing when used
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg import sql
except ImportError:  # pragma: no cover - exercised only where the extra is not installed
    psycopg = None
    register_vector = None
    sql = None

__all__ = ["ConnectionPool", "psycopg", "redact_dsn", "register_vector", "require_driver", "sql"]


def require_driver() -> None:
    if psycopg is None:
        raise RuntimeError("rag.backend 'pgvector' needs psycopg and pgvector: pip install 'stackserve[pgvector]'")


def redact_dsn(dsn: str) -> str:
    """The DSN as a key=value string with any password replaced by ``***`` (safe to print or log)."""
    require_driver()
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    if params.get("password"):
        params["password"] = "***"
    return psycopg.conninfo.make_conninfo(**params)


class ConnectionPool:
    """A few idle reader connections kept for reuse (searches run in worker threads); a broken or
    busy connection is closed rather than handed out again."""

    def __init__(self, connect, keep: int) -> None:
        self._connect = connect
        self._keep = keep
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[Any]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            healthy = not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            with self._lock:
                if healthy and len(self._idle) < self._keep:
                    self._idle.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


