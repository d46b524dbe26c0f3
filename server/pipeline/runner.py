"""``pipeline run`` and ``pipeline backfill``: bronze's change feed into silver, silver's into gold.

Why this order of writes (the exactly-once argument): for a bronze range ``done+1 .. end`` the run
writes quarantine, then silver, each commit carrying Delta's application transaction
``(app, end)``, then a checkpoint row. Both writes are merges on keys, so writing them again adds
nothing. A crash (SIGKILL included) between any two commits leaves each table at a committed
version (Delta commits are atomic renames of the log entry); the re-run sees an output whose
transaction version is past the last checkpoint and redoes exactly that planned range, with the
checkpoint's watermark, so it decides the same rows the same way. Gold is a pure function of
silver at a version, replaced bucket by bucket, so redoing it is harmless too.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
import pyarrow.compute as pc

from server.pipeline import checkpoints, feature_views, gold, silver, tables
from server.pipeline.expectations import EVENT_ID, TS_US
from server.pipeline.feature_store import OnlineStore
from server.pipeline.metrics import PipelineMetrics
from server.pipeline.spec import PipelineSpec
from server.pipeline.tables import Layout

#: Test hook for the crash drill: the process SIGKILLs itself at the named point.
FAULT_ENV = "STACKSERVE_PIPELINE_FAULT"
Progress = Callable[[str], None]


@dataclass(slots=True)
class RunReport:
    """What one run or backfill did (``stackserve pipeline run --json`` prints it)."""

    run_id: str
    bronze_range: list[int] | None = None
    rows_in: int = 0
    silver_rows: int = 0
    quarantined_rows: int = 0
    duplicates: int = 0
    schema_breaks: list[str] = field(default_factory=list)
    gold_rows: dict[str, int] = field(default_factory=dict)
    materialized: dict[str, int] = field(default_factory=dict)  # feature view -> gold Delta version exported
    recovered: bool = False
    seconds: float = 0.0


def _fault(point: str) -> None:
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def run_lock(layout: Layout) -> Iterator[None]:
    """One run at a time per pipeline (an flock: released by the kernel when a killed run dies)."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with open(layout.lock, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another pipeline run holds {layout.lock}") from None
        yield


def _save_gate(layout: Layout, gate: dict, bronze_range: list[int], run_id: str) -> None:
    import json

    if not gate:
        return
    tmp = layout.ge_result.with_suffix(".tmp")
    tmp.write_text(json.dumps({**gate, "bronze_range": bronze_range, "run_id": run_id,
                               "validated_at": datetime.now(UTC).isoformat()}, indent=2))
    os.replace(tmp, layout.ge_result)


def silver_stage(layout: Layout, spec: PipelineSpec, key: bytes, metrics: PipelineMetrics, report: RunReport,
                 retyped_fraction: float, progress: Progress) -> None:
    """Process every bronze version after the last checkpoint, one planned range at a time."""
    while True:
        head = tables.version(layout.bronze)
        if head is None:
            return
        ck = checkpoints.last(layout, "silver")
        done = ck.source_version if ck else 0  # version 0 is the table's empty creation
        watermark = ck.watermark_us if ck else None
        landed = [v for v in (tables.txn_version(layout.silver, silver.SILVER_APP),
                              tables.txn_version(layout.quarantine, silver.QUARANTINE_APP)) if v is not None]
        recovering = bool(landed) and max(landed) > done
        end = max(landed) if recovering else head
        report.recovered |= recovering
        if end <= done:
            return
        changes = tables.changes(layout.bronze, done + 1, end)
        changes = changes.filter(pc.equal(changes["_change_type"], "insert"))
        progress(f"silver: bronze versions {done + 1}..{end}: {changes.num_rows} events")
        out = silver.process(changes, spec, key, metrics, watermark, True, retyped_fraction)
        progress(f"silver: writing {len(out.silver)} rows, quarantine {len(out.quarantine)}")
        _fault("silver-before-commit")
        nq = silver.write_quarantine(layout, out.quarantine, end)
        _fault("silver-between-commits")
        ns = silver.write_silver(layout, spec, out.silver, end)
        _fault("silver-before-checkpoint")
        _save_gate(layout, out.gate, [done + 1, end], report.run_id)
        checkpoints.record(layout, "silver", end, tables.version(layout.silver) or 0, out.watermark_us,
                           out.rows_in, ns, nq, report.run_id)
        metrics.rows.labels(table="silver").inc(ns)
        metrics.rows.labels(table="quarantine").inc(nq)
        metrics.save(layout.metrics)
        report.bronze_range = [report.bronze_range[0] if report.bronze_range else done + 1, end]
        report.rows_in += out.rows_in
        report.silver_rows += ns
        report.quarantined_rows += nq
        metrics.duplicates.inc(len(out.silver) - ns)  # ids already in silver from an earlier range
        report.duplicates += out.duplicates + len(out.silver) - ns
        report.schema_breaks += out.breaks


def gold_stage(layout: Layout, spec: PipelineSpec, metrics: PipelineMetrics, report: RunReport,
               progress: Progress) -> None:
    """Bring every current feature-view version up to silver's latest version."""
    head = tables.version(layout.silver)
    if head is None:
        return
    for view in spec.feature_views:
        version = feature_views.resolve(layout, view)
        stage = f"gold:{version.table}"
        ck = checkpoints.last(layout, stage)
        if ck is not None and tables.is_table(layout.gold(version.table)):
            if ck.source_version >= head:
                continue
            buckets: list[int] | None = gold.changed_buckets(layout, ck.source_version + 1, head)
        else:
            buckets = None  # a new version: built from all of silver
        progress(f"gold: {version.table} from silver v{head} ({'all' if buckets is None else len(buckets)} buckets)")
        rows = gold.refresh(layout, spec, version, head, buckets)
        _fault("gold-before-checkpoint")
        checkpoints.record(layout, stage, head, tables.version(layout.gold(version.table)) or 0, None, rows, rows, 0,
                           report.run_id)
        metrics.rows.labels(table=version.table).inc(rows)
        metrics.save(layout.metrics)
        report.gold_rows[version.table] = rows


@contextmanager
def _session(layout: Layout) -> Iterator[tuple[RunReport, PipelineMetrics]]:
    """A run under the lock, with the counters of earlier runs loaded and saved at the end."""
    t0 = time.perf_counter()
    report = RunReport(run_id=uuid.uuid4().hex)
    with run_lock(layout):
        metrics = PipelineMetrics()
        metrics.load(layout.metrics)
        yield report, metrics
        metrics.save(layout.metrics)
    report.seconds = time.perf_counter() - t0


def feast_stage(layout: Layout, spec: PipelineSpec, online: OnlineStore | None, report: RunReport,
                progress: Progress) -> None:
    """Export the gold tables that moved to the Feast repository and materialize them (under the run
    lock, so the snapshot is the gold this run left). ``online=None``: no feature store. Driven by
    the gold tables' Delta versions, not this run's report: a run killed after gold and before this
    stage is caught up by the next one."""
    if online is None:
        return
    _fault("before-feast")
    from server.pipeline import feature_store

    for snap in feature_store.sync(layout, spec, online, progress):
        report.materialized[snap.table] = snap.delta_version


def run(layout: Layout, spec: PipelineSpec, key: bytes, retyped_fraction: float = 0.5,
        progress: Progress = lambda _: None, online: OnlineStore | None = None) -> RunReport:
    """Process whatever is new through silver and gold (and into Feast when ``online`` is given)."""
    with _session(layout) as (report, metrics):
        silver_stage(layout, spec, key, metrics, report, retyped_fraction, progress)
        gold_stage(layout, spec, metrics, report, progress)
        feast_stage(layout, spec, online, report, progress)
    return report


def parse_time(text: str) -> int:
    """An ISO-8601 time (a date alone is midnight UTC; no zone means UTC) in epoch microseconds."""
    ts = pd.Timestamp(text)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1000)


def backfill(layout: Layout, spec: PipelineSpec, key: bytes, start: str, end: str, retyped_fraction: float = 0.5,
             progress: Progress = lambda _: None, online: OnlineStore | None = None) -> RunReport:
    """Recompute silver, quarantine and gold for events with ``start <= time < end`` from all of bronze.

    New bronze versions are processed first (as ``run`` does). Within the range the lateness bound
    is lifted (re-admitting late data is what a backfill is for); the future-skew bound stays.
    Silver and quarantine rows of the range are replaced in one commit each; gold follows from
    silver's change feed."""
    lo, hi = parse_time(start), parse_time(end)
    if hi <= lo:
        raise ValueError(f"--from ({start}) must be before --to ({end})")
    with _session(layout) as (report, metrics):
        silver_stage(layout, spec, key, metrics, report, retyped_fraction, progress)
        head = tables.version(layout.bronze)
        if head is not None and head >= 1:
            changes = tables.changes(layout.bronze, 1, head)
            changes = changes.filter(pc.equal(changes["_change_type"], "insert"))
            progress(f"backfill: re-deciding {changes.num_rows} bronze events for [{start}, {end})")
            out = silver.process(changes, spec, key, PipelineMetrics(), None, False, retyped_fraction)
            rows = out.silver[(out.silver[TS_US] >= lo) & (out.silver[TS_US] < hi)] if len(out.silver) else out.silver
            ts_q = pd.to_numeric(out.quarantine[TS_US], errors="coerce")
            quarantine = out.quarantine[(out.quarantine["kind"] == "row") & (ts_q >= lo) & (ts_q < hi)]
            if tables.is_table(layout.silver) and len(rows):  # an id kept outside the range keeps its place
                outside = tables.read(layout.silver, filters=[(TS_US, "<", lo)]).column(EVENT_ID).to_pylist() + \
                    tables.read(layout.silver, filters=[(TS_US, ">=", hi)]).column(EVENT_ID).to_pylist()
                rows = rows[~rows[EVENT_ID].isin(set(outside))]
            ns, nq = _replace_range(layout, spec, rows, quarantine, lo, hi, head)
            report.silver_rows, report.quarantined_rows, report.rows_in = ns, nq, out.rows_in
            checkpoints.record(layout, f"backfill:{start}..{end}", head, tables.version(layout.silver) or 0, None,
                               out.rows_in, ns, nq, report.run_id)
        gold_stage(layout, spec, metrics, report, progress)
        feast_stage(layout, spec, online, report, progress)
    return report


def _replace_range(layout: Layout, spec: PipelineSpec, rows: pd.DataFrame, quarantine: pd.DataFrame, lo: int,
                   hi: int, head: int) -> tuple[int, int]:
    import pyarrow as pa
    from deltalake import write_deltalake

    schema = silver.silver_schema(spec)
    tables.ensure_table(layout.silver, schema)
    tables.ensure_table(layout.quarantine, silver.QUARANTINE_SCHEMA)
    in_range = f"{TS_US} >= {lo} AND {TS_US} < {hi}"
    write_deltalake(str(layout.quarantine),
                    pa.Table.from_pandas(quarantine[silver.QUARANTINE_SCHEMA.names], schema=silver.QUARANTINE_SCHEMA,
                                         preserve_index=False),
                    mode="overwrite", predicate=f"kind = 'row' AND {in_range}")
    write_deltalake(str(layout.silver), pa.Table.from_pandas(rows[schema.names], schema=schema, preserve_index=False),
                    mode="overwrite", predicate=in_range, schema_mode="merge")
    return len(rows), len(quarantine)
