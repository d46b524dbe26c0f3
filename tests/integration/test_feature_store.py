"""Issue 27 points 6 and 7: the Feast repository over gold, with real Feast, SQLite, Redis and MLflow.

What is held: ``pipeline run`` materializes exactly what changed into the online store (SQLite and
a real ``redis-server``), the online values are the latest gold row per entity; Feast's historical
retrieval equals a brute-force as-of join (never a feature row from after the label's time); and
``train anomaly --feature-view`` logs the view version and the gold Delta version with the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from server.pipeline import feature_store, tables
from server.pipeline.feature_store import OnlineStore
from server.pipeline.runner import run
from tests.support.pipeline import KEY, Pipe, events
from tests.support.redis_server import redis_server

pytestmark = pytest.mark.integration
VIEW = "gold_features_v1"


def _latest_per_entity(layout, spec) -> pd.DataFrame:
    gold = tables.read(layout.gold(VIEW)).to_pandas()
    gold = gold.sort_values([spec.timestamp, "_event_id"], kind="stable")
    return gold.groupby(spec.entity, sort=True).tail(1).set_index(spec.entity).sort_index()


def _online(pipe: Pipe, online: OnlineStore, entities: list[str], features: list[str]) -> pd.DataFrame:
    store = feature_store.open_store(pipe.layout, online)
    rows = store.get_online_features(features=[f"{VIEW}:{c}" for c in features],
                                     entity_rows=[{pipe.spec.entity: e} for e in entities]).to_df()
    return rows.set_index(pipe.spec.entity).sort_index()


def _check_materialized(pipe: Pipe, online: OnlineStore) -> None:
    """Two runs with new drops, one with nothing new: the online store follows gold each time."""
    pipe.ingest(events(300, entities=6))
    first = run(pipe.layout, pipe.spec, KEY, online=online)
    assert first.materialized == {VIEW: tables.version(pipe.layout.gold(VIEW))}
    features = feature_store.feature_columns(feature_store.resolve_view(pipe.layout, VIEW)["definition"])
    for n in (0, 1):
        latest = _latest_per_entity(pipe.layout, pipe.spec)
        served = _online(pipe, online, list(latest.index), features)
        pd.testing.assert_frame_equal(served[features], latest[features], check_dtype=False, check_names=False)
        if n == 0:
            again = run(pipe.layout, pipe.spec, KEY, online=online)
            assert again.materialized == {}, "nothing new in gold: nothing to materialize"
            pipe.ingest(events(200, offset=300, entities=6))
            second = run(pipe.layout, pipe.spec, KEY, online=online)
            assert second.materialized == {VIEW: tables.version(pipe.layout.gold(VIEW))}
            assert second.materialized[VIEW] > first.materialized[VIEW]


def test_sqlite_online_store_follows_each_gold_update(tmp_path: Path) -> None:
    pipe = Pipe(tmp_path, events(300, entities=6))
    _check_materialized(pipe, OnlineStore("sqlite"))
    assert (feature_store.repo_dir(pipe.layout) / "online.db").exists()


def test_redis_online_store_follows_each_gold_update(tmp_path: Path) -> None:
    pipe = Pipe(tmp_path, events(300, entities=6))
    with redis_server(tmp_path / "redis") as redis:
        _check_materialized(pipe, OnlineStore("redis", f"127.0.0.1:{redis.port}"))
        import redis as redis_client

        assert redis_client.Redis(port=redis.port).dbsize() == 6, "one hash per entity"


def test_switching_the_online_store_fills_the_new_one_without_a_gold_change(tmp_path: Path) -> None:
    pipe = Pipe(tmp_path, events(200, entities=5))
    pipe.ingest(events(200, entities=5))
    version = run(pipe.layout, pipe.spec, KEY, online=OnlineStore("sqlite")).materialized[VIEW]
    with redis_server(tmp_path / "redis") as redis:
        online = OnlineStore("redis", f"127.0.0.1:{redis.port}")
        assert run(pipe.layout, pipe.spec, KEY, online=online).materialized == {VIEW: version}
        assert run(pipe.layout, pipe.spec, KEY, online=online).materialized == {}
        latest = _latest_per_entity(pipe.layout, pipe.spec)
        served = _online(pipe, online, list(latest.index), ["f1__ewma"])
        pd.testing.assert_frame_equal(served[["f1__ewma"]], latest[["f1__ewma"]], check_names=False)


def _as_of(gold: pd.DataFrame, entity_df: pd.DataFrame, entity: str, ts: str, features: list[str]) -> pd.DataFrame:
    """Brute force: for each row, the gold row of its entity with the latest time <= the row's time."""
    out = []
    for _, row in entity_df.iterrows():
        rows = gold[(gold[entity] == row[entity]) & (gold[ts] <= row[ts])]
        out.append(rows.sort_values(ts).iloc[-1][features] if len(rows) else pd.Series(np.nan, index=features))
    return pd.DataFrame(out).reset_index(drop=True).astype(float)


def test_historical_retrieval_equals_a_brute_force_as_of_join(tmp_path: Path) -> None:
    pipe = Pipe(tmp_path, events(400, entities=5))
    pipe.ingest(events(400, entities=5))
    run(pipe.layout, pipe.spec, KEY, online=OnlineStore("sqlite"))
    gold = pd.read_parquet(feature_store.snapshot(pipe.layout, VIEW).path)
    entity, ts = pipe.spec.entity, pipe.spec.timestamp
    rng = np.random.default_rng(7)
    lo, hi = gold[ts].min(), gold[ts].max()
    n = 120
    # label times between events, exactly at events, before any event and after the last
    at_events = gold.sample(40, random_state=1)[[entity, ts]]
    between = pd.DataFrame({entity: rng.choice(sorted(gold[entity].unique()), n - 40),
                            ts: lo - pd.Timedelta(seconds=5) + pd.to_timedelta(
                                rng.uniform(0, (hi - lo).total_seconds() + 10, n - 40), unit="s")})
    entity_df = pd.concat([at_events, between], ignore_index=True)
    # one label row before every event of its entity (Feast's file store drops such rows, see below)
    first = gold[gold[entity] == "device-002"][ts].min()
    entity_df = pd.concat([entity_df, pd.DataFrame({entity: ["device-002"], ts: [first - pd.Timedelta(seconds=3)]})],
                          ignore_index=True)
    entity_df[ts] = entity_df[ts].dt.floor("ms")
    entity_df["label_id"] = np.arange(len(entity_df))
    training = feature_store.historical(pipe.layout, pipe.spec, "gold_features", entity_df)
    got = training.frame.sort_values("label_id").reset_index(drop=True)
    expected = _as_of(gold, entity_df, entity, ts, training.features)
    # Feast 0.67's file (Dask) store drops a label row whose entity has no feature row at or before
    # its time (instead of returning nulls): exactly the rows the brute force finds nothing for.
    matched = expected.notna().any(axis=1).to_numpy()
    assert 0 < (~matched).sum() < len(entity_df)
    assert got["label_id"].tolist() == entity_df["label_id"][matched].tolist()
    pd.testing.assert_frame_equal(got[training.features].astype(float), expected[matched].reset_index(drop=True),
                                  check_names=False)
    assert training.snapshot.delta_version == tables.version(pipe.layout.gold(VIEW))


def test_train_from_feature_view_logs_view_version_and_snapshot(tmp_path: Path) -> None:
    import mlflow

    from server.anomaly.training import train_from_feature_view
    from server.config import load_settings

    settings = load_settings(None, data_dir=str(tmp_path))
    settings.training.rf_n_estimators = 20
    settings.training.name_prefix = "fv"
    pipe = Pipe(tmp_path, events(300, entities=4))
    pipe.ingest(events(3000, entities=4))
    run(pipe.layout, pipe.spec, KEY, online=OnlineStore("sqlite"))
    (result,) = train_from_feature_view(settings, "gold_features:1", "anomaly", families=["rf"])
    params = mlflow.get_run(result.run_id).data.params
    tags = mlflow.get_run(result.run_id).data.tags
    gold_version = tables.version(pipe.layout.gold(VIEW))
    for d in (params, tags):
        assert d["feature_view"] == "gold_features"
        assert d["feature_view_version"] == "1"
        assert d["gold_delta_version"] == str(gold_version)
    assert result.metrics["test_roc_auc"] > 0.5
    with pytest.raises(ValueError, match="no feature view 'gold_features:9'"):
        train_from_feature_view(settings, "gold_features:9", "anomaly")
    with pytest.raises(ValueError, match="not \\['rf-stream'\\]"):
        train_from_feature_view(settings, "gold_features", "anomaly", families=["rf-stream"])


@pytest.mark.slow
def test_cli_run_killed_before_feast_is_caught_up_and_trains_from_the_view(tmp_path: Path) -> None:
    """As a user runs it: ``pipeline run`` SIGKILLed after gold, before Feast; the next ``run``
    materializes the view (driven by Delta versions, not by the dead run's report), and ``train
    anomaly --feature-view`` trains from it through the CLI."""
    import json
    import os
    import signal
    import subprocess
    import sys

    def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "server.cli", "--data-dir", str(tmp_path / "data"), *args],
                              capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})

    drop = tmp_path / "events.csv"
    for args in (("pipeline", "replay", "--out", str(drop), "--rows", "3000", "--entities", "8"),
                 ("pipeline", "init", "--data", str(drop), "--entity", "device", "--timestamp", "ts",
                  "--label", "anomaly"),
                 ("pipeline", "ingest", str(drop))):
        assert cli(*args).returncode == 0
    killed = cli("pipeline", "run", env={"STACKSERVE_PIPELINE_FAULT": "before-feast"})
    assert killed.returncode == -signal.SIGKILL
    layout = tables.Layout(tmp_path / "data" / "pipeline")
    assert feature_store.snapshot(layout, VIEW) is None
    rerun = cli("pipeline", "run", "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["materialized"] == {VIEW: tables.version(layout.gold(VIEW))}
    status = json.loads(cli("pipeline", "status", "--json").stdout)
    assert status["tables"]["gold"][VIEW]["feast_delta_version"] == tables.version(layout.gold(VIEW))
    train = cli("train", "anomaly", "--feature-view", "gold_features", "--families", "rf", "--name-prefix", "cli")
    assert train.returncode == 0, train.stderr
    assert "cli-rf" in train.stdout
    both = cli("train", "anomaly", "--feature-view", "gold_features", "--data", str(drop))
    assert both.returncode == 2 and "two sources" in both.stderr
