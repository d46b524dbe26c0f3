"""Online feature lookup latency from the Feast store over gold: SQLite vs Redis (issue 27 point 8).

What it measures: the time ``OnlineFeatureReader.read`` adds to a Score request that carries entity
keys instead of feature values: one ``get_online_features`` call for the batch's distinct entities,
rows fanned back out to the events. p50/p95 at one event and at a batch of 64 events (64 distinct
entities), after a warm-up, the two stores in the same run on the same gold data. The issue's
targets: p50 at one event <= 1 ms (SQLite), <= 2 ms (Redis).

    python -m bench.feature_store_online [--events 4000] [--reps 500] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import machine_line, markdown_table, write_json
from server.pipeline import feature_store
from server.pipeline.bronze import ingest_file
from server.pipeline.drops import read_drop
from server.pipeline.feature_store import OnlineStore
from server.pipeline.infer_spec import infer_spec
from server.pipeline.metrics import PipelineMetrics
from server.pipeline.online_features import OnlineFeatureReader
from server.pipeline.replay import shuttle_events, write_events
from server.pipeline.runner import run
from server.pipeline.spec import save_spec
from server.pipeline.tables import Layout

ENTITIES = 64
FAR_FUTURE_US = 2**62


def _timings(reader: OnlineFeatureReader, keys: list[str], batch: int, reps: int,
             rng: np.random.Generator) -> list[float]:
    samples = []
    for r in range(reps + 20):  # the first 20: warm-up
        chosen = [keys[(r + i) % len(keys)] for i in range(batch)] if batch > 1 else [keys[rng.integers(len(keys))]]
        t0 = time.perf_counter()
        reader.read(chosen, [FAR_FUTURE_US] * batch)
        if r >= 20:
            samples.append(time.perf_counter() - t0)
    return samples


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=4000)
    ap.add_argument("--reps", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="1,000 events, 100 repetitions")
    args = ap.parse_args(argv)
    if args.quick:
        args.events, args.reps = 1000, 100
    from tests.support.redis_server import RedisServer  # Debian's redis-server on a free port

    rng = np.random.default_rng(0)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        drop = write_events(shuttle_events(args.events, entities=ENTITIES), root / "events.csv")
        layout = Layout(root / "pipeline")
        spec = infer_spec(read_drop(drop), "device", "ts", label="anomaly")
        save_spec(spec, layout.spec)
        ingest_file(layout, drop, PipelineMetrics())
        redis = RedisServer(root / "redis")
        redis.start()
        try:
            for kind in ("sqlite", "redis"):
                online = OnlineStore(kind, f"127.0.0.1:{redis.port}")
                if kind == "sqlite":
                    run(layout, spec, bytes(32), online=online)
                else:  # the same gold, materialized into Redis (an explicit window: the registry already
                    # records the SQLite materialization, so an incremental one would find nothing new)
                    feature_store.open_store(layout, online).materialize(
                        start_date=datetime(2000, 1, 1, tzinfo=UTC), end_date=datetime(2100, 1, 1, tzinfo=UTC))
                reader = OnlineFeatureReader(layout, spec.entity, "gold_features", online)
                snap = feature_store.snapshot(layout, reader.table)
                keys = sorted(pd.read_parquet(snap.path, columns=[spec.entity])[spec.entity].unique())
                results[kind] = {f"batch{b}": _timings(reader, keys, b, args.reps, rng) for b in (1, len(keys))}
        finally:
            redis.stop()
    rows = []
    for kind, by_batch in results.items():
        for batch, samples in by_batch.items():
            ms = np.asarray(samples) * 1e3
            rows.append([f"online lookup ({kind})", batch.removeprefix("batch") + " events",
                         f"{np.percentile(ms, 50):.3f}", f"{np.percentile(ms, 95):.3f}", len(ms)])
    print(machine_line())
    print(markdown_table(["what", "batch", "p50 ms", "p95 ms", "samples"], rows))
    p50 = {k: float(np.percentile(v["batch1"], 50) * 1e3) for k, v in results.items()}
    print(f"\np50 at one event: SQLite {p50['sqlite']:.3f} ms (target <= 1), Redis {p50['redis']:.3f} ms (target <= 2)")
    path = write_json("feature_store_online", {"events": args.events, "entities": ENTITIES, "p50_one_event_ms": p50,
                                               "samples_s": results})
    print(f"samples: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
