"""The Feast feature repository over gold: generated from the gold schemas, materialized after each
gold update, read for training (historical retrieval) and serving (online lookups).

Layout under the pipeline dir::

    feast/feature_store.yaml     project, registry, offline store (file), online store (SQLite or Redis)
    feast/registry.db            Feast's registry (file)
    feast/online.db              the SQLite online store (the embedded default)
    feast/offline/<table>.parquet + <table>.json   gold at one Delta version, and that version
    feast/materialized.json      per online store: the gold version of each view materialized there

Why a Parquet snapshot and not the Delta table itself as the offline source: Feast 0.67's ``file``
offline store (its Dask store) reads a ``FileSource`` path with ``dd.read_parquet`` even when the
source says ``DeltaFormat``, i.e. every Parquet file in the directory, including the files a bucket
overwrite removed from the Delta log: stale rows next to fresh ones. Feast reads Delta properly only
through its DuckDB store (``ibis.read_delta``), which needs ``ibis-framework`` and ``duckdb`` (not in
our dependencies). So each gold update writes the gold table *at a Delta version* to one Parquet
file (atomically replaced) with the version beside it: the offline store is exactly one gold
snapshot, and training records which one.

Feature views are named after the versioned gold tables (``gold_features_v2``); entity = the spec's
entity column (string join key); timestamp field = the spec's timestamp; features = the view's raw
columns and its rolling statistics (Float64). ``feast`` is imported inside functions: it is heavy.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from server.pipeline import feature_views, gold, tables
from server.pipeline.spec import PipelineSpec
from server.pipeline.tables import Layout

PROJECT = "stackserve"


@dataclass(frozen=True, slots=True)
class OnlineStore:
    """Which online store Feast writes to: ``sqlite`` (a file in the pipeline dir) or ``redis``
    (``redis_url``: ``host:port``, Feast's connection-string form)."""

    kind: Literal["sqlite", "redis"] = "sqlite"
    redis_url: str = "127.0.0.1:6379"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The gold table behind a feature view's offline source: which Delta version was exported."""

    view: str
    table: str
    delta_version: int
    rows: int
    path: Path


def repo_dir(layout: Layout) -> Path:
    return layout.root / "feast"


def _offline(layout: Layout, table: str) -> Path:
    return repo_dir(layout) / "offline" / f"{table}.parquet"


def feature_columns(view_definition: dict) -> list[str]:
    """The Float64 features of a view: its raw columns, then the kernel's statistics."""
    columns = list(view_definition["columns"])
    return columns + gold.feature_names(columns)


def write_config(layout: Layout, online: OnlineStore) -> Path:
    """``feature_store.yaml`` for the pipeline (rewritten each time: the online store is a setting)."""
    root = repo_dir(layout)
    root.mkdir(parents=True, exist_ok=True)
    store: dict[str, Any] = ({"type": "sqlite", "path": str(root / "online.db")} if online.kind == "sqlite"
                             else {"type": "redis", "connection_string": online.redis_url})
    config = {"project": PROJECT, "provider": "local", "registry": str(root / "registry.db"),
              "offline_store": {"type": "file"}, "online_store": store, "entity_key_serialization_version": 3}
    path = root / "feature_store.yaml"
    text = yaml.safe_dump(config, sort_keys=False)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def open_store(layout: Layout, online: OnlineStore) -> Any:
    """The pipeline's Feast store, a ``feast.FeatureStore`` (typed ``Any``: feast is imported only
    here, not even for type checking, so importing this module stays cheap)."""
    from feast import FeatureStore

    write_config(layout, online)
    return FeatureStore(repo_path=str(repo_dir(layout)))


def snapshot(layout: Layout, table: str) -> Snapshot | None:
    """The exported snapshot of a gold table, ``None`` before the first export."""
    meta = _offline(layout, table).with_suffix(".json")
    try:
        doc = json.loads(meta.read_text())
    except FileNotFoundError:
        return None
    return Snapshot(doc["view"], table, doc["delta_version"], doc["rows"], _offline(layout, table))


def export(layout: Layout, view: str, table: str) -> Snapshot:
    """Write the gold table at its current Delta version as the view's offline Parquet (atomic
    replace, data first, then the version beside it)."""
    path = layout.gold(table)
    version = tables.version(path)
    if version is None:
        raise FileNotFoundError(f"gold table {table} does not exist yet: run `stackserve pipeline run`")
    import pyarrow.parquet as pq

    data = tables.read(path, at_version=version)
    data = data.drop_columns([c for c in ("_bucket",) if c in data.column_names])
    out = _offline(layout, table)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".parquet.tmp")
    pq.write_table(data, tmp)
    os.replace(tmp, out)
    meta = out.with_suffix(".json")
    tmp_meta = meta.with_suffix(".json.tmp")
    tmp_meta.write_text(json.dumps({"view": view, "table": table, "delta_version": version, "rows": data.num_rows,
                                    "exported_at": datetime.now(UTC).isoformat()}))
    os.replace(tmp_meta, meta)
    return Snapshot(view, table, version, data.num_rows, out)


def definitions(layout: Layout, spec: PipelineSpec, versions: list[dict]) -> list[Any]:
    """Feast objects for the given view versions: one entity, one file source and one feature view
    per version (named after its gold table)."""
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    entity = Entity(name=spec.entity, join_keys=[spec.entity], value_type=ValueType.STRING,
                    description=f"the pipeline's entity column {spec.entity!r}")
    objects: list[Any] = [entity]
    for v in versions:
        source = FileSource(name=f"{v['table']}_source", path=str(_offline(layout, v["table"])),
                            timestamp_field=spec.timestamp)
        objects += [source, FeatureView(
            name=v["table"], entities=[entity], ttl=timedelta(0), source=source, online=True,
            schema=[Field(name=c, dtype=Float64) for c in feature_columns(v["definition"])],
            tags={"pipeline_view": v["name"], "view_version": str(v["version"])})]
    return objects


def live_versions(layout: Layout) -> list[dict]:
    """Versions that are not retired and whose gold table exists."""
    return [v for v in feature_views.all_versions(layout)
            if not v.get("retired") and tables.is_table(layout.gold(v["table"]))]


def _materialized_path(layout: Layout) -> Path:
    return repo_dir(layout) / "materialized.json"


def _store_key(online: OnlineStore) -> str:
    """Which online store a materialization went to: switching stores (SQLite -> Redis) must fill
    the new one even though gold has not moved."""
    return "sqlite" if online.kind == "sqlite" else f"redis://{online.redis_url}"


def _materialized(layout: Layout) -> dict[str, dict[str, int]]:
    try:
        return json.loads(_materialized_path(layout).read_text())
    except FileNotFoundError:
        return {}


def sync(layout: Layout, spec: PipelineSpec, online: OnlineStore, progress=lambda _m: None) -> list[Snapshot]:
    """After a gold update: export every view version whose gold table moved past its snapshot,
    apply the repository, and materialize into this online store every view whose snapshot it
    does not hold yet (``materialized.json`` records, per store, the gold version materialized).
    Returns the snapshots materialized (none when nothing changed: a repeated call does nothing)."""
    versions = live_versions(layout)
    exported = False
    for v in versions:
        snap = snapshot(layout, v["table"])
        if snap is None or snap.delta_version != tables.version(layout.gold(v["table"])):
            export(layout, v["name"], v["table"])
            exported = True
    done = _materialized(layout)
    held = done.setdefault(_store_key(online), {})
    pending = [snap for v in versions if (snap := snapshot(layout, v["table"])) is not None
               and held.get(snap.table) != snap.delta_version]
    if not pending and not exported and (repo_dir(layout) / "registry.db").exists():
        return []
    store = open_store(layout, online)
    with contextlib.redirect_stdout(sys.stderr):  # Feast prints progress; `run --json` owns stdout
        store.apply(definitions(layout, spec, versions))
    for snap in pending:
        if snap.rows:
            ts = pd.read_parquet(snap.path, columns=[spec.timestamp])[spec.timestamp]
            start, end = ts.min().to_pydatetime(), ts.max().to_pydatetime() + timedelta(seconds=1)
            progress(f"feast: materializing {snap.table} (gold v{snap.delta_version}, {snap.rows} rows) into "
                     f"{online.kind}")
            with contextlib.redirect_stdout(sys.stderr):
                store.materialize(start_date=start, end_date=end, feature_views=[snap.table])
        held[snap.table] = snap.delta_version
        tmp = _materialized_path(layout).with_suffix(".json.tmp")
        tmp.write_text(json.dumps(done, indent=2, sort_keys=True))
        os.replace(tmp, _materialized_path(layout))
    return pending


def resolve_view(layout: Layout, ref: str) -> dict:
    """``NAME`` (its newest live version), ``NAME:VERSION`` or a table name (``NAME_vN``) to a
    version entry of ``feature_views.json``."""
    name, _, number = ref.partition(":")
    versions = feature_views.all_versions(layout)
    matches = [v for v in versions if v["table"] == ref] or \
        [v for v in versions if v["name"] == name and (not number or str(v["version"]) == number)]
    if not number and len(matches) > 1:
        matches = [max((v for v in matches if not v.get("retired")), key=lambda v: v["version"], default=matches[-1])]
    if not matches:
        known = ", ".join(f"{v['name']}:{v['version']}" for v in versions) or "none (run `stackserve pipeline run`)"
        raise ValueError(f"no feature view {ref!r}; known: {known}")
    return matches[0]


@dataclass(slots=True)
class TrainingSet:
    """A point-in-time-correct training frame and where it came from."""

    frame: pd.DataFrame
    features: list[str]
    view: dict
    snapshot: Snapshot


def historical(layout: Layout, spec: PipelineSpec, ref: str, entity_df: pd.DataFrame,
               online: OnlineStore | None = None) -> TrainingSet:
    """Feast's historical retrieval of view ``ref`` for ``entity_df`` (entity column + the spec's
    timestamp + anything else, e.g. the label): each row gets the gold row of its entity with the
    latest event time at or before its own (never a later one)."""
    view = resolve_view(layout, ref)
    snap = snapshot(layout, view["table"])
    if snap is None or snap.delta_version != tables.version(layout.gold(view["table"])):
        sync(layout, spec, online or OnlineStore())
        snap = snapshot(layout, view["table"])
    assert snap is not None
    store = open_store(layout, online or OnlineStore())
    features = feature_columns(view["definition"])
    frame = store.get_historical_features(
        entity_df=entity_df, features=[f"{view['table']}:{c}" for c in features]).to_df()
    return TrainingSet(frame, features, view, snap)
