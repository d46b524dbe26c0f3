"""A throwaway PostgreSQL 16 + pgvector server for tests, from the binaries in the ``pgserver`` wheel.

Why pgserver: Debian bookworm has no pgvector package and the tests must not depend on a service
someone else runs; the wheel (a dev dependency) bundles initdb/pg_ctl/postgres and pgvector's
``vector.so`` (0.6.2). Its own API already copes with running as root, which postgres refuses: it
runs initdb and the server as an unprivileged system user ``pgserver`` (created with ``useradd`` on
first use) and opens read/traverse permission on the data directory's parents to it. The server
listens on a unix socket in its data directory only (no TCP port to collide with a parallel run)
and is stopped, its data directory deleted, when the context exits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg


@contextlib.contextmanager
def postgres_server(root: Path) -> Iterator[str]:
    """Start a server with its data under ``root``; yield a DSN (superuser ``postgres``, no password)
    for a database where the ``vector`` extension exists."""
    import pgserver

    server = pgserver.get_server(root / "pgdata", cleanup_mode="delete")
    try:
        dsn = server.get_uri()
        with psycopg.connect(dsn, autocommit=True) as conn:
            # a test server holds nothing worth a flush to disk; crash safety is not what is tested
            conn.execute("ALTER SYSTEM SET fsync = off")
            conn.execute("ALTER SYSTEM SET synchronous_commit = off")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        yield dsn
    finally:
        server.cleanup()


def pgvector_version(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
