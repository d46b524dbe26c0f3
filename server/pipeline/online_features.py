"""Online features of one gold feature view for a batch of events, in one Feast lookup.

This is the read the gateway needs for issue 27 point 8 (a Score request carrying entity keys and
event times instead of feature values): every distinct entity of a coalesced batch is looked up
once, in a single ``get_online_features`` call, and the rows are fanned back out to the events.

Point-in-time guard: the online store holds only each entity's newest feature row. An event stamped
*before* that row's event time would be scored with features from its future, so such an event is
refused (``StaleEventError`` naming the event), never silently served; an entity the store has no
row for is refused the same way (``MissingEntityError``), since the model needs complete inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from server.pipeline import feature_store
from server.pipeline.feature_store import OnlineStore
from server.pipeline.tables import Layout


class MissingEntityError(ValueError):
    """An entity has no row in the online store."""


class StaleEventError(ValueError):
    """An event's time is earlier than the newest features stored for its entity."""


@dataclass(slots=True)
class OnlineBatch:
    """Features for each event of a batch (rows in request order) and the event time, in epoch
    microseconds, of the gold row each was read from."""

    features: np.ndarray
    feature_time_us: np.ndarray


class OnlineFeatureReader:
    """Reads one view version's online features (``feast.FeatureStore`` opened once, reused)."""

    def __init__(self, layout: Layout, entity: str, view: str, online: OnlineStore) -> None:
        entry = feature_store.resolve_view(layout, view)
        self.table: str = entry["table"]
        self.version: int = entry["version"]
        self.entity = entity
        self.features: list[str] = feature_store.feature_columns(entry["definition"])
        self._refs = [f"{self.table}:{c}" for c in self.features]
        self._column = {c: j for j, c in enumerate(self.features)}
        self._store = feature_store.open_store(layout, online)

    def read(self, entity_keys: Sequence[str], event_time_us: Sequence[int] | None = None) -> OnlineBatch:
        """One lookup for the distinct keys; rows fanned back out to ``entity_keys``' order."""
        unique = list(dict.fromkeys(entity_keys))
        response = self._store.get_online_features(features=self._refs,
                                                   entity_rows=[{self.entity: k} for k in unique])
        proto = response.proto
        names = list(proto.metadata.feature_names.val)
        table = np.full((len(unique), len(self.features)), np.nan)
        seen_us = np.full(len(unique), -1, dtype=np.int64)
        for name, vector in zip(names, proto.results, strict=True):
            j = self._column.get(name)
            if j is None:  # the join key's own column
                continue
            for i, (value, ts) in enumerate(zip(vector.values, vector.event_timestamps, strict=True)):
                if value.WhichOneof("val") == "double_val":
                    table[i, j] = value.double_val
                    seen_us[i] = max(seen_us[i], ts.seconds * 1_000_000 + ts.nanos // 1000)
        missing = [k for k, us in zip(unique, seen_us, strict=True) if us < 0]
        if missing:
            raise MissingEntityError(f"entity_keys: no online features for {missing[:5]} in {self.table}")
        index = {k: i for i, k in enumerate(unique)}
        rows = np.fromiter((index[k] for k in entity_keys), dtype=np.int64, count=len(entity_keys))
        batch = OnlineBatch(table[rows], seen_us[rows])
        if event_time_us is not None:
            times = np.asarray(event_time_us, dtype=np.int64)
            stale = np.flatnonzero(times < batch.feature_time_us)
            if stale.size:
                i = int(stale[0])
                raise StaleEventError(f"event_times[{i}]: {entity_keys[i]!r} has online features from a later time "
                                      f"({batch.feature_time_us[i]} us > {times[i]} us); score it from history")
        return batch
