"""Issue 27 point 8 (the read under it): online features for a batch in one lookup, held to
historical retrieval (online/offline parity) with SQLite and a real ``redis-server``.

Parity: for every entity and a time t at or after its newest event, the features the online store
serves equal Feast's historical retrieval at t. The guard: an event stamped before the newest
stored row of its entity is refused (its features would come from its future), and so is an
entity the store has never seen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from server.pipeline import feature_store
from server.pipeline.feature_store import OnlineStore
from server.pipeline.online_features import MissingEntityError, OnlineFeatureReader, StaleEventError
from server.pipeline.runner import run
from tests.support.pipeline import KEY, Pipe, events
from tests.support.redis_server import redis_server

pytestmark = pytest.mark.integration


def _parity(pipe: Pipe, online: OnlineStore) -> None:
    pipe.ingest(events(500, entities=7))
    run(pipe.layout, pipe.spec, KEY, online=online)
    entity, ts = pipe.spec.entity, pipe.spec.timestamp
    gold = pd.read_parquet(feature_store.snapshot(pipe.layout, "gold_features_v1").path)
    newest = gold.groupby(entity)[ts].max()
    # each entity twice in one batch (fanned out from one lookup), at its newest event and 90 s later
    keys = list(newest.index) * 2
    times = list(newest.to_numpy()) + list((newest + pd.Timedelta(seconds=90)).to_numpy())
    reader = OnlineFeatureReader(pipe.layout, entity, "gold_features", online)
    times_us = [int(pd.Timestamp(t).value // 1000) for t in times]
    served = reader.read(keys, times_us)
    entity_df = pd.DataFrame({entity: keys, ts: pd.to_datetime(times, utc=True), "row": np.arange(len(keys))})
    offline = feature_store.historical(pipe.layout, pipe.spec, "gold_features", entity_df, online)
    expected = offline.frame.sort_values("row")[reader.features].to_numpy(dtype=float)
    np.testing.assert_array_equal(served.features, expected)
    np.testing.assert_array_equal(served.feature_time_us[: len(newest)], times_us[: len(newest)])

    first = keys[0]
    with pytest.raises(StaleEventError, match=r"event_times\[1\]"):
        reader.read([keys[1], first], [times_us[1], times_us[0] - 1])
    with pytest.raises(MissingEntityError, match="no-such-device"):
        reader.read([first, "no-such-device"])


def test_online_equals_historical_sqlite(tmp_path: Path) -> None:
    _parity(Pipe(tmp_path, events(500, entities=7)), OnlineStore("sqlite"))


def test_online_equals_historical_redis(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as redis:
        _parity(Pipe(tmp_path, events(500, entities=7)), OnlineStore("redis", f"127.0.0.1:{redis.port}"))
