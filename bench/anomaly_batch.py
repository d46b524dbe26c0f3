"""Batch scoring of a Parquet file: Ray Data (`stackserve score --batch`) vs one process vs gRPC.

Three ways to score the same N events with the same registered model:
- **single process**: read the file, one in-process scorer call per 8,192-row block, write Parquet
  (the floor: no framework at all);
- **ray data**: `score_files` on a private Ray head, an actor pool of the scorer, streamed to
  Parquet (the cluster path; on one 2-core machine it can at best match the single process, its
  point is that the same job spreads over a cluster's nodes);
- **grpc**: a gateway in this process (no Ray) and the client sending 4,096-event Score requests
  with 4 in flight (what a user without the batch path would do).
Events/s, median of ``--repeats`` runs, with the CPU printed.

    python -m bench.anomaly_batch [--events 200000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from bench.report import machine_line, markdown_table, spread, write_json, write_text
from server.anomaly.data import load_shuttle

console = Console(stderr=True)
MODEL = "shuttle-rf"


def make_input(events: int, folder: Path) -> Path:
    base = load_shuttle().drop(columns=["anomaly"], errors="ignore")
    reps = -(-events // len(base))
    data = pd.concat([base] * reps, ignore_index=True).iloc[:events]
    path = folder / "events.parquet"
    data.to_parquet(path)
    return path


def single_process(settings, path: Path, out: Path) -> float:
    from server.anomaly.scorer import load_scorer

    scorer = load_scorer(settings)
    columns = list(scorer.model(MODEL).card.feature_names)
    started = time.perf_counter()
    data = pd.read_parquet(path)
    X = data[columns].to_numpy(dtype=np.float32)
    scores, flags = [], []
    for i in range(0, len(X), 8192):
        r = scorer.score(MODEL, X[i:i + 8192])
        scores.append(r.scores)
        flags.append(r.is_anomaly)
    data["score"], data["is_anomaly"] = np.concatenate(scores), np.concatenate(flags)
    data.to_parquet(out)
    return time.perf_counter() - started


def ray_data(settings, path: Path, out: Path) -> float:
    from server.anomaly.batch_scoring import plan_batch, score_files

    report = score_files(settings, plan_batch(settings, [str(path)], MODEL), str(out), 8192, (1, 2))
    return report.seconds


def grpc_path(settings, path: Path) -> float:
    from server.anomaly.scorer import load_scorer
    from server.client import AsyncAnomalyClient
    from server.gateway.server import start_gateway
    from server.placement import local_anomaly_endpoint

    async def run() -> float:
        columns = list(load_scorer(settings).model(MODEL).card.feature_names)  # not timed: setup
        gw = await start_gateway(settings, local_anomaly_endpoint(settings))
        await gw.wait_ready(60)
        try:
            started = time.perf_counter()
            data = pd.read_parquet(path)
            X = data[columns].to_numpy(dtype=np.float32)
            async with AsyncAnomalyClient(f"127.0.0.1:{gw.port}") as c:
                sem = asyncio.Semaphore(4)

                async def one(i: int):
                    async with sem:
                        return await c.score(X[i:i + 4096], model=MODEL)

                results = await asyncio.gather(*(one(i) for i in range(0, len(X), 4096)))
            data["score"] = np.concatenate([r.scores for r in results])
            return time.perf_counter() - started
        finally:
            await gw.stop()

    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import ray

    from server.anomaly.training import train_default
    from server.config import load_settings
    from server.ray_cluster import connect_ray, disconnect_ray

    console.print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = load_settings(None, data_dir=str(folder / "data"),
                                 gateway={"port": 0, "metrics_port": 0, "openai_port": None},
                                 llm={"enabled": False}, rag={"enabled": False})
        train_default(settings)
        path = make_input(args.events, folder)
        times: dict[str, list[float]] = {"single process": [], "ray data": [], "grpc": []}
        attachment = connect_ray(settings)
        try:
            for i in range(args.repeats):
                times["single process"].append(single_process(settings, path, folder / f"sp{i}.parquet"))
                times["ray data"].append(ray_data(settings, path, folder / f"rd{i}"))
                times["grpc"].append(grpc_path(settings, path))
                console.print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
        finally:
            disconnect_ray(attachment)
            ray.shutdown()
    rows, payload = [], {}
    single = spread(times["single process"])[0]
    for name, ts in times.items():
        med, half = spread(ts)
        payload[name] = {"seconds": ts, "events_per_s": args.events / med}
        rows.append([name, f"{args.events / med:,.0f}", f"{med:.2f} ± {half:.2f}", f"{single / med:.2f}x"])
    table = markdown_table(["path", "events/s", "seconds (median ± half IQR)", "vs single process"], rows)
    text = f"{machine_line()}\n\n{args.events:,} events, model {MODEL}\n\n{table}\n"
    write_json("anomaly_batch", {"events": args.events, "results": payload})
    write_text("anomaly_batch.md", text)
    print(text)


if __name__ == "__main__":
    main()
