"""The checkpoint table: which source versions each stage has processed, and its watermark.

Why both this table and Delta's application transactions (``tables.txn_version``): the
transaction version is committed atomically with a stage's output, so after a crash it says
exactly how far the output got; this table is the readable history (rows in/out, the watermark the
next range is validated against, when) that status shows and that a re-run resumes from. A row is
appended only after every output of its range is committed; a crash before it makes the re-run
redo the same range (the plan is recovered from the outputs' transaction versions), and the
outputs' writes are idempotent (merge on keys, overwrite by predicate), so the tables end the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from server.pipeline import tables
from server.pipeline.tables import Layout

SCHEMA = pa.schema([
    ("stage", pa.string()),
    ("source_version", pa.int64()),
    ("target_version", pa.int64()),
    ("watermark_us", pa.int64()),
    ("rows_in", pa.int64()),
    ("rows_out", pa.int64()),
    ("rows_quarantined", pa.int64()),
    ("run_id", pa.string()),
    ("processed_at", pa.timestamp("us", tz="UTC")),
])


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The last range a stage finished: up to ``source_version`` of its source table."""

    stage: str
    source_version: int
    target_version: int
    watermark_us: int | None


def last(layout: Layout, stage: str) -> Checkpoint | None:
    """The stage's newest checkpoint, ``None`` before its first run."""
    if not tables.is_table(layout.checkpoints):
        return None
    t = tables.read(layout.checkpoints, filters=[("stage", "=", stage)])
    if t.num_rows == 0:
        return None
    df = t.to_pandas().sort_values(["source_version", "processed_at"])
    row = df.iloc[-1]
    wm = row["watermark_us"]
    return Checkpoint(stage, int(row["source_version"]), int(row["target_version"]),
                      None if wm is None or wm != wm else int(wm))


def record(layout: Layout, stage: str, source_version: int, target_version: int, watermark_us: int | None,
           rows_in: int, rows_out: int, rows_quarantined: int, run_id: str) -> None:
    """Append one checkpoint row (one small commit)."""
    from deltalake import write_deltalake

    tables.ensure_table(layout.checkpoints, SCHEMA)
    row = pa.table({
        "stage": [stage], "source_version": [source_version], "target_version": [target_version],
        "watermark_us": pa.array([watermark_us], pa.int64()), "rows_in": [rows_in], "rows_out": [rows_out],
        "rows_quarantined": [rows_quarantined], "run_id": [run_id],
        "processed_at": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC")),
    }, schema=SCHEMA)
    write_deltalake(str(layout.checkpoints), row, mode="append")


def all_latest(layout: Layout) -> dict[str, dict]:
    """Each stage's newest row, for status."""
    if not tables.is_table(layout.checkpoints):
        return {}
    df = tables.read(layout.checkpoints).to_pandas()
    if df.empty:
        return {}
    df = df.sort_values(["source_version", "processed_at"]).groupby("stage").tail(1)
    out = {}
    for row in df.itertuples(index=False):
        out[row.stage] = {"source_version": int(row.source_version), "target_version": int(row.target_version),
                          "rows_in": int(row.rows_in), "rows_out": int(row.rows_out),
                          "rows_quarantined": int(row.rows_quarantined), "run_id": row.run_id,
                          "processed_at": row.processed_at.isoformat()}
    return out
