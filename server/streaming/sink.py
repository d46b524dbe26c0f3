"""The score sink: a SQLite table keyed by event id, written with an upsert.

Why keyed by event id: the bus delivers at least once (a consumer killed after writing scores and
before its acks reached the broker gets the same events again), so the sink, not the bus, is where
"each event scored once" holds. The first write of an event id keeps its score; a redelivery only
counts itself in ``deliveries`` (which the chaos drill reads to prove that redelivery happened and
was absorbed). SQLite in WAL mode commits a batch in one transaction, durable on return: the
consumer acks only after ``write`` returns.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    event_id TEXT PRIMARY KEY,
    entity TEXT NOT NULL,
    ts TEXT NOT NULL,
    score REAL NOT NULL,
    is_anomaly INTEGER NOT NULL,
    model TEXT NOT NULL,
    model_version TEXT NOT NULL,
    stream_seq INTEGER NOT NULL,
    written_at REAL NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1
)
"""

UPSERT = """
INSERT INTO scores (event_id, entity, ts, score, is_anomaly, model, model_version, stream_seq, written_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(event_id) DO UPDATE SET deliveries = deliveries + 1
"""


@dataclass(frozen=True, slots=True)
class ScoreRow:
    event_id: str
    entity: str
    ts: str
    score: float
    is_anomaly: bool
    model: str
    model_version: str
    stream_seq: int


class ScoreSink:
    """One SQLite file; ``write`` upserts a batch in one transaction and returns how many ids were new."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # acked means on disk: a power cut must not undo it
        self.db.execute(SCHEMA)

    def known(self, event_ids: Sequence[str]) -> set[str]:
        """The ids among ``event_ids`` already in the sink (a redelivered batch's already-scored part)."""
        found: set[str] = set()
        for i in range(0, len(event_ids), 500):
            chunk = list(event_ids[i:i + 500])
            q = f"SELECT event_id FROM scores WHERE event_id IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in self.db.execute(q, chunk))
        return found

    def count_redelivered(self, event_ids: Iterable[str]) -> None:
        """Record a redelivery of ids already scored (not re-scored: the first score stands)."""
        ids = [(e,) for e in event_ids]
        if ids:
            self._transaction("UPDATE scores SET deliveries = deliveries + 1 WHERE event_id = ?", ids)

    def write(self, rows: Sequence[ScoreRow]) -> None:
        """Upsert ``rows`` in one transaction, on disk when this returns."""
        now = time.time()
        self._transaction(UPSERT, [(r.event_id, r.entity, r.ts, float(r.score), int(r.is_anomaly), r.model,
                                    r.model_version, int(r.stream_seq), now) for r in rows])

    def _transaction(self, sql: str, params: list[tuple]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(sql, params)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()


def read_scores(path: Path) -> list[tuple]:
    """Every row as ``(event_id, score, deliveries, written_at)`` (tests and the benchmark read it)."""
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT event_id, score, deliveries, written_at FROM scores").fetchall()
    except sqlite3.OperationalError as exc:  # the consumer has created the file, not the table yet
        if "no such table" in str(exc):
            return []
        raise
    finally:
        db.close()
