"""Bronze: an append-only Delta table of raw events as received, with ingestion metadata.

Why raw text in one JSON column: bronze must take any drop, including one whose schema broke
(a renamed column, a new one), without a schema migration and without dropping anything; typing
is silver's job. Each drop is one commit and one batch id, so silver can quarantine a whole batch
by it and a row is traced back to its file and line (``offset``, 0-based data row).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from server.pipeline import tables
from server.pipeline.drops import drop_format, read_drop
from server.pipeline.metrics import PipelineMetrics
from server.pipeline.tables import Layout

SCHEMA = pa.schema([
    ("batch_id", pa.string()),
    ("source", pa.string()),
    ("file", pa.string()),
    ("offset", pa.int64()),
    ("payload", pa.string()),
    ("ingested_at", pa.timestamp("us", tz="UTC")),
])


@dataclass(frozen=True, slots=True)
class IngestResult:
    """One drop's landing: its batch id (``None`` for an empty drop), rows and bronze version."""

    file: str
    batch_id: str | None
    rows: int
    bronze_version: int | None
    message: str


def ingest_file(layout: Layout, path: Path, metrics: PipelineMetrics, source: str = "file") -> IngestResult:
    """Land one drop in bronze as one commit. An empty drop lands nothing and says so.

    Raises ``FileNotFoundError``/``ValueError`` (naming the file) for a missing or unreadable drop;
    bronze is not touched then."""
    fmt = drop_format(path)
    raw = read_drop(path)
    if raw.empty:
        metrics.empty_drops.inc()
        return IngestResult(str(path), None, 0, tables.version(layout.bronze),
                            f"empty drop: {path} has no rows; nothing landed")
    # to_json writes nulls as null and text as JSON strings, in C: one line per row
    payload = raw.to_json(orient="records", lines=True, force_ascii=False).rstrip("\n").split("\n")
    batch_id, n = land_payloads(layout, payload, metrics, source=source, file=str(path.resolve()), fmt=fmt)
    return IngestResult(str(path), batch_id, n, tables.version(layout.bronze), f"landed {n} events from {path}")


def land_payloads(layout: Layout, payload: list[str], metrics: PipelineMetrics, *, source: str, file: str,
                  fmt: str, offsets: list[int] | None = None) -> tuple[str, int]:
    """Append raw rows (one JSON object per row, every value as text) to bronze as one commit and one
    batch id; returns ``(batch_id, rows)``. ``offsets``: each row's position in its source (a file's
    data row by default; a message bus gives its stream sequence), so a row is traced back to it.

    Why separate from ``ingest_file``: the message-bus consumer (server/streaming) lands a fetched
    batch of events the same way a drop lands, without writing a file first."""
    from deltalake import write_deltalake

    batch_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    n = len(payload)
    batch = pa.table({
        "batch_id": pa.array([batch_id] * n, pa.string()),
        "source": pa.array([source] * n, pa.string()),
        "file": pa.array([file] * n, pa.string()),
        "offset": pa.array(range(n) if offsets is None else offsets, pa.int64()),
        "payload": pa.array(payload, pa.string()),
        "ingested_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
    }, schema=SCHEMA)
    tables.ensure_table(layout.bronze, SCHEMA, extra_config={"delta.appendOnly": "true"})
    write_deltalake(str(layout.bronze), batch, mode="append")
    metrics.ingested.labels(format=fmt).inc(n)
    metrics.rows.labels(table="bronze").inc(n)
    return batch_id, n
