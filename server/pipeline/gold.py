"""Gold: per-entity rolling-window features of silver, computed by the project's stream-feature
kernels in their batch form, one Delta table per feature-view version.

Point-in-time correctness: rows are ordered by (event time, event id) and fed to one
:class:`kernels.stream_features.StreamFeatureState`, whose features for an event use only that
entity's earlier events (ties in event time are broken by event id): never an event from after the
row's timestamp. Why recompute whole entity buckets: a late event changes the features of every
later event of its entity, so an increment recomputes each bucket (a hash of the entity) touched
by the silver changes and replaces it in one commit (overwrite by predicate), which is idempotent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from server.pipeline import tables
from server.pipeline.expectations import EVENT_ID, TS_US
from server.pipeline.feature_views import ViewVersion
from server.pipeline.silver import ARROW_TYPES, BUCKET
from server.pipeline.spec import PipelineSpec
from server.pipeline.tables import Layout

STATS = ("mean", "std", "z", "ewma")


def gold_app(view: ViewVersion) -> str:
    return f"stackserve.gold.{view.table}"


def feature_names(columns: list[str]) -> list[str]:
    """The kernel's output columns (``f1__mean`` ... block by block)."""
    return [f"{c}__{s}" for s in STATS for c in columns]


def gold_schema(spec: PipelineSpec, view: ViewVersion) -> pa.Schema:
    keys = [(EVENT_ID, pa.string()), (spec.entity, pa.string()), (spec.timestamp, pa.timestamp("us", tz="UTC")),
            (TS_US, pa.int64())]
    extra = [(c, ARROW_TYPES[spec.column(c).type])
             for c in (spec.label, spec.tenant) if c is not None]
    columns = view.definition["columns"]
    values = [(c, pa.float64()) for c in columns] + [(n, pa.float64()) for n in feature_names(columns)]
    return pa.schema([*keys, *extra, *values, (BUCKET, pa.int32())])


def rolling_features(entities: np.ndarray, ts_us: np.ndarray, event_ids: np.ndarray, values: np.ndarray,
                     window: int, alpha: float, backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The batch form of the stream features: ``(order, features)`` where ``order`` sorts the rows
    by (event time, event id) and ``features[k]`` belongs to row ``order[k]``."""
    from kernels.stream_features import StreamFeatureState

    n, nf = values.shape
    order = np.lexsort((event_ids, ts_us)) if n else np.zeros(0, dtype=np.int64)
    if n == 0:
        return order, np.empty((0, 4 * nf))
    codes, uniques = pd.factorize(entities[order])  # small ints hash faster than strings in the slot map
    keys = codes.tolist()
    state = StreamFeatureState(nf, window=window, alpha=alpha, max_entities=max(1, len(uniques)))
    return order, state.transform(keys, values[order], backend=backend)


def compute(silver: pd.DataFrame, spec: PipelineSpec, view: ViewVersion, backend: str = "auto") -> pd.DataFrame:
    """Gold rows for the given silver rows (whole entities), in (time, event id) order."""
    schema = gold_schema(spec, view)
    columns = view.definition["columns"]
    values = silver[columns].to_numpy(dtype=np.float64, na_value=np.nan)  # nulls (nullable columns) -> NaN
    order, feats = rolling_features(silver[spec.entity].astype(str).to_numpy(), silver[TS_US].to_numpy(np.int64),
                                    silver[EVENT_ID].astype(str).to_numpy(), values,
                                    view.definition["window"], view.definition["alpha"], backend)
    base = silver.iloc[order].reset_index(drop=True)
    out = {name: base[name] for name in schema.names if name in base.columns and name not in columns}
    for j, c in enumerate(columns):
        out[c] = values[order, j]
    for j, name in enumerate(feature_names(columns)):
        out[name] = feats[:, j]
    return pd.DataFrame(out)[schema.names]


def _commit(view: ViewVersion, silver_version: int) -> Any:
    from deltalake import CommitProperties, Transaction

    return CommitProperties(app_transactions=[Transaction(gold_app(view), silver_version)])


def refresh(layout: Layout, spec: PipelineSpec, view: ViewVersion, silver_version: int,
            buckets: list[int] | None) -> int:
    """Recompute ``buckets`` (all when ``None``) from silver at ``silver_version`` and replace them
    in the view's table in one commit. Returns the rows written."""
    from deltalake import DeltaTable, write_deltalake

    schema = gold_schema(spec, view)
    path = layout.gold(view.table)
    tables.ensure_table(path, schema, partition_by=[BUCKET])
    if buckets is not None and not buckets:
        return 0
    filters = None if buckets is None else [(BUCKET, "in", sorted(buckets))]
    silver = tables.read(layout.silver, at_version=silver_version, filters=filters).to_pandas() \
        if tables.is_table(layout.silver) else pd.DataFrame()
    commit = _commit(view, silver_version)
    if silver.empty:
        predicate = None if buckets is None else f"{BUCKET} IN ({', '.join(map(str, sorted(buckets)))})"
        DeltaTable(str(path)).delete(predicate, commit_properties=commit)
        return 0
    gold = compute(silver, spec, view)
    data = pa.Table.from_pandas(gold, schema=schema, preserve_index=False)
    predicate = None if buckets is None else f"{BUCKET} IN ({', '.join(map(str, sorted(buckets)))})"
    write_deltalake(str(path), data, mode="overwrite", predicate=predicate, partition_by=[BUCKET],
                    commit_properties=commit)
    return len(gold)


def changed_buckets(layout: Layout, start: int, end: int) -> list[int]:
    """Buckets of the silver rows changed in versions ``start..end`` (inserts, deletes, updates)."""
    if start > end:
        return []
    changes = tables.changes(layout.silver, start, end, columns=[BUCKET])
    return sorted({int(b) for b in changes.column(BUCKET).to_pylist() if b is not None})
