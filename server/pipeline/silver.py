"""Silver: bronze's new events typed, deduplicated by event id, masked and gated by the
Great Expectations suite; rows that fail go to quarantine with the expectations they failed.

Why these steps in this order: a schema break is decided per batch first (one message naming
the column instead of thousands of row failures); exact duplicates (the same event id and raw
row, e.g. a drop ingested twice) are dropped and counted, while two different rows claiming one id
both fail uniqueness and are quarantined for a person to resolve; PII is masked before the gate, so
neither silver nor quarantine ever holds it (bronze does, and is access-restricted as raw data).
Every decision depends only on the range's rows and the watermark of the previous checkpoint, so a
re-run of the same range decides the same (the exactly-once argument in checkpoints.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from server.pipeline import tables
from server.pipeline.contract import schema_breaks, typed_frame
from server.pipeline.expectations import EVENT_ID, ROW, TS_US, raw_column, validate
from server.pipeline.masking import mask_columns, mask_payload
from server.pipeline.metrics import PipelineMetrics
from server.pipeline.spec import ColumnType, PipelineSpec
from server.pipeline.tables import Layout

log = logging.getLogger("stackserve.pipeline")

BUCKET = "_bucket"
ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
QUARANTINE_SCHEMA = pa.schema([
    ("_qkey", pa.string()),
    (EVENT_ID, pa.string()),
    ("batch_id", pa.string()),
    ("file", pa.string()),
    ("offset", pa.int64()),
    ("payload", pa.string()),
    ("failed", pa.list_(pa.string())),
    ("kind", pa.string()),
    ("message", pa.string()),
    (TS_US, pa.int64()),
    ("bronze_version", pa.int64()),
    ("ingested_at", pa.timestamp("us", tz="UTC")),
])
SILVER_APP = "stackserve.silver"
QUARANTINE_APP = "stackserve.quarantine"


def silver_schema(spec: PipelineSpec) -> pa.Schema:
    """Spec columns in order (typed), then the pipeline's own columns."""
    return pa.schema([(c.name, ARROW_TYPES[c.type]) for c in spec.columns] + [
        (EVENT_ID, pa.string()), (TS_US, pa.int64()), (BUCKET, pa.int32()), ("_batch_id", pa.string()),
        ("_bronze_version", pa.int64()), ("_ingested_at", pa.timestamp("us", tz="UTC")),
    ])


def entity_bucket(entities: pd.Series, buckets: int) -> np.ndarray:
    """A stable bucket per entity (BLAKE2b, not Python's per-process salted ``hash``)."""
    codes, uniques = pd.factorize(entities.astype(str))
    per = np.array([int.from_bytes(hashlib.blake2b(u.encode(), digest_size=4).digest(), "big") % buckets
                    for u in uniques], dtype=np.int32)
    return per[codes] if len(per) else np.zeros(len(entities), dtype=np.int32)


@dataclass(slots=True)
class SilverOutput:
    """What one range produced, before it is written."""

    silver: pd.DataFrame
    quarantine: pd.DataFrame
    rows_in: int
    duplicates: int
    watermark_us: int | None
    gate: dict[str, Any] = field(default_factory=dict)
    breaks: list[str] = field(default_factory=list)


def _parse(payloads: list[str]) -> pd.DataFrame:
    """Raw JSON rows to an object frame of text and ``None`` (a key no row has is no column: the
    schema check needs to see it missing). pyarrow's reader parses in C++; bronze's payloads are
    flat objects of strings and nulls, which it reads as such."""
    import pyarrow.json as pj

    try:
        table = pj.read_json(io.BytesIO("\n".join(payloads).encode()),
                             parse_options=pj.ParseOptions(newlines_in_values=False))
        cols = {name: table.column(name).cast(pa.string()).to_numpy(zero_copy_only=False)
                for name in table.column_names}
        df = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in cols.items()})
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        df = pd.DataFrame.from_records([json.loads(p) for p in payloads]).astype(object)
    return df.where(df.notna(), None)


def _quarantine_rows(meta: pd.DataFrame, failed: list[list[str]], kind: str, messages: list[str],
                     ts_us: pd.Series | None, spec: PipelineSpec, key: bytes,
                     event_ids: pd.Series | None) -> pd.DataFrame:
    n = len(meta)
    return pd.DataFrame({
        "_qkey": (meta["batch_id"] + ":" + meta["offset"].astype(str)).to_numpy(),
        EVENT_ID: event_ids.to_numpy() if event_ids is not None else [None] * n,
        "batch_id": meta["batch_id"].to_numpy(), "file": meta["file"].to_numpy(),
        "offset": meta["offset"].to_numpy(),
        "payload": [mask_payload(p, spec.pii, key) for p in meta["payload"].tolist()],
        "failed": failed, "kind": [kind] * n, "message": messages,
        TS_US: ts_us.to_numpy() if ts_us is not None else pd.array([None] * n, dtype="Int64"),
        "bronze_version": meta["_commit_version"].to_numpy(), "ingested_at": meta["ingested_at"].to_numpy(),
    })


def process(changes: pa.Table, spec: PipelineSpec, key: bytes, metrics: PipelineMetrics, watermark_us: int | None,
            check_lateness: bool, retyped_fraction: float) -> SilverOutput:
    """Decide every bronze row of a range: silver, quarantine, or an exact duplicate.

    ``changes`` holds bronze rows (``batch_id``, ``file``, ``offset``, ``payload``, ``ingested_at``,
    ``_commit_version``). ``watermark_us``: the newest event time in silver before this range."""
    meta_all = changes.select(["batch_id", "file", "offset", "payload", "ingested_at", "_commit_version"]).to_pandas()
    meta_all = meta_all.sort_values(["_commit_version", "offset"], kind="stable").reset_index(drop=True)
    quarantined: list[pd.DataFrame] = []
    good_raw: list[pd.DataFrame] = []
    good_meta: list[pd.DataFrame] = []
    breaks: list[str] = []
    for _, meta in meta_all.groupby(["_commit_version", "batch_id"], sort=True):
        raw = _parse(meta["payload"].tolist())
        found = schema_breaks(raw, spec, retyped_fraction)
        if found:
            message = "; ".join(b.message for b in found)
            breaks.append(f"batch {meta['batch_id'].iloc[0]} ({meta['file'].iloc[0]}): {message}")
            log.warning("pipeline: %s", breaks[-1])
            for b in found:
                metrics.schema_breaks.labels(column=b.column).inc()
            names = [f"schema:{b.column}" for b in found]
            quarantined.append(_quarantine_rows(meta, [names] * len(meta), "schema_break", [message] * len(meta),
                                                None, spec, key, None))
            continue
        raw.index = meta.index
        good_raw.append(raw[spec.column_names])
        good_meta.append(meta)
    if not good_raw:
        return SilverOutput(pd.DataFrame(), _concat(quarantined), len(meta_all), 0, watermark_us, {}, breaks)
    raw = pd.concat(good_raw)
    meta = pd.concat(good_meta)
    if spec.event_id:
        event_ids = raw[spec.event_id].astype(object)
    else:  # no id column: the raw row is its identity (an exact re-delivery is the same event)
        event_ids = pd.Series([hashlib.sha256(p.encode()).hexdigest()[:32] for p in meta["payload"].tolist()],
                              index=meta.index, dtype=object)
    dup = pd.Series(list(zip(event_ids.tolist(), meta["payload"].tolist(), strict=True)), index=meta.index).duplicated()
    dup &= event_ids.notna()
    duplicates = int(dup.sum())
    metrics.duplicates.inc(duplicates)
    raw, meta, event_ids = raw[~dup], meta[~dup], event_ids[~dup]
    typed = mask_columns(typed_frame(raw, spec), spec.pii, key)
    ts = typed[spec.timestamp]
    ts_us = pd.Series(ts.dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype(np.int64),
                      index=ts.index).where(ts.notna()).astype("Int64")
    frame = typed.copy()
    for col in spec.columns:
        if col.type != "string":
            frame[raw_column(col.name)] = raw[col.name]
    frame[EVENT_ID] = event_ids
    frame[TS_US] = ts_us
    frame[ROW] = np.arange(len(frame))
    frame = frame.reset_index(drop=True)
    for name in frame.columns:  # GE checks ranges of nullable extension ints element by element: give it floats
        if isinstance(frame[name].dtype, pd.Int64Dtype):
            frame[name] = frame[name].astype("float64")
    lo = None
    if check_lateness and watermark_us is not None:
        lo = watermark_us - int(spec.freshness.max_lateness_s * 1e6)
    ingested_us = int(meta["ingested_at"].max().value // 1000)
    hi = ingested_us + int(spec.freshness.max_future_s * 1e6)
    gate = validate(frame, spec, lo, hi)
    bad = np.zeros(len(frame), dtype=bool)
    if gate.failed:
        bad[list(gate.failed)] = True
    for names in gate.failed.values():
        for name in names:
            metrics.quarantined.labels(expectation=name).inc()
    if bad.any():
        failed = [gate.failed[i] for i in np.flatnonzero(bad)]
        quarantined.append(_quarantine_rows(
            meta[bad], failed, "row", ["failed " + ", ".join(f) for f in failed], ts_us[bad], spec, key,
            event_ids[bad]))
    ok = ~bad
    silver = typed[ok].copy()
    silver[EVENT_ID] = event_ids[ok].astype(str)
    silver[TS_US] = ts_us[ok].astype(np.int64)
    silver[BUCKET] = entity_bucket(silver[spec.entity], spec.entity_buckets)
    silver["_batch_id"] = meta["batch_id"][ok]
    silver["_bronze_version"] = meta["_commit_version"][ok].astype(np.int64)
    silver["_ingested_at"] = meta["ingested_at"][ok]
    new_wm = watermark_us
    if len(silver):
        top = int(silver[TS_US].max())
        new_wm = top if new_wm is None else max(new_wm, top)
    return SilverOutput(silver.reset_index(drop=True), _concat(quarantined), len(meta_all), duplicates, new_wm,
                        gate.summary, breaks)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=QUARANTINE_SCHEMA.names)


def _commit(app_id: str, app_version: int) -> Any:
    from deltalake import CommitProperties, Transaction

    return CommitProperties(app_transactions=[Transaction(app_id, app_version)])


def write_silver(layout: Layout, spec: PipelineSpec, rows: pd.DataFrame, app_version: int) -> int:
    """Insert rows whose event id silver lacks (merge): re-running a range inserts nothing twice."""
    from deltalake import DeltaTable

    schema = silver_schema(spec)
    tables.ensure_table(layout.silver, schema)
    if rows.empty:
        return 0
    data = pa.Table.from_pandas(rows[schema.names], schema=schema, preserve_index=False)
    stats = (DeltaTable(str(layout.silver))
             .merge(data, predicate=f"t.{EVENT_ID} = s.{EVENT_ID}", source_alias="s", target_alias="t",
                    merge_schema=True,  # a column added to the spec is added to silver (earlier rows: null)
                    commit_properties=_commit(SILVER_APP, app_version))
             .when_not_matched_insert_all().execute())
    return int(stats["num_target_rows_inserted"])


def write_quarantine(layout: Layout, rows: pd.DataFrame, app_version: int) -> int:
    """Insert quarantine rows not there yet (keyed by batch and offset)."""
    from deltalake import DeltaTable

    tables.ensure_table(layout.quarantine, QUARANTINE_SCHEMA)
    if rows.empty:
        return 0
    data = pa.Table.from_pandas(rows[QUARANTINE_SCHEMA.names], schema=QUARANTINE_SCHEMA, preserve_index=False)
    stats = (DeltaTable(str(layout.quarantine))
             .merge(data, predicate="t._qkey = s._qkey", source_alias="s", target_alias="t",
                    commit_properties=_commit(QUARANTINE_APP, app_version))
             .when_not_matched_insert_all().execute())
    return int(stats["num_target_rows_inserted"])
