"""Streaming inference latency: an event published on NATS JetStream -> its score in the sink.

Why: issue 27's target is p95 <= 1 s from publish to score at 5k events/s on 2 cores. This starts
the embedded broker (a temporary store), runs the consumer as users run it (``stackserve pipeline
stream``, a subprocess, in-process scoring with the registered ``shuttle-rf``), publishes the Shuttle
replay at ``--rate`` for ``--seconds`` with confirmed publishes, waits until the sink has every
event, and reads each event's sink commit time (``written_at``) against its send time. Two configs
in one run: events landed in bronze (the default path) and ``--no-bronze`` (scoring alone), so the
Delta commit per batch shows as a difference. Publisher, broker and consumer share the machine's
cores (2 here): the numbers include that contention, as a one-box deployment would.

Usage::

    python -m bench.streaming                 # 5,000 events/s for 10 s, both configs
    python -m bench.streaming --quick         # 2,000 events/s for 3 s (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.report import machine_line, markdown_table, write_json
from server.pipeline.drops import read_drop
from server.pipeline.infer_spec import infer_spec
from server.pipeline.replay import shuttle_events, write_events
from server.pipeline.spec import save_spec
from server.streaming.bus import BusNames, connect, ensure_streams
from server.streaming.events import frame_events
from server.streaming.nats_server import NatsServer
from server.streaming.publisher import publish_messages
from server.streaming.sink import read_scores


def ensure_model(data_dir: Path) -> None:
    """Train and register the default models into ``data_dir`` unless ``shuttle-rf`` is there."""
    from server.anomaly.scorer import load_scorer
    from server.config import load_settings

    settings = load_settings(None, data_dir=str(data_dir))
    try:
        load_scorer(settings).model("shuttle-rf")
    except Exception:  # not registered yet (any registry error): train once
        from server.anomaly.training import train_default

        train_default(settings)


def events(n: int) -> list[tuple[str, bytes]]:
    base = shuttle_events(entities=256)
    reps = []
    while sum(len(r) for r in reps) < n:
        k = len(reps)
        df = base.copy()
        df["event_id"] = f"r{k}-" + df["event_id"]
        reps.append(df)
    rows = [r for df in reps for r in df.to_dict("records")][:n]
    return frame_events(rows, "event_id", "device", "ts")


async def publish_run(url: str, names: BusNames, messages, rate: float) -> tuple[dict[str, float], float]:
    nc = await connect(url, 30)
    try:
        js = nc.jetstream()
        await ensure_streams(js, names)
        t0 = time.monotonic()
        sent = await publish_messages(js, names, messages, rate=rate)
        return sent, time.monotonic() - t0
    finally:
        await nc.close()


def one_config(root: Path, data_dir: Path, messages, rate: float, bronze: bool, batch: int) -> dict:
    names = BusNames()
    pipeline_dir = root / "pipeline"
    sample = write_events(shuttle_events(5000, entities=256), root / "sample.csv")
    save_spec(infer_spec(read_drop(sample), "device", "ts", label="anomaly"), pipeline_dir / "pipeline.yaml")
    broker = NatsServer(root / "nats").start()
    env = {**os.environ, "STACKSERVE__PIPELINE__DIR": str(pipeline_dir)}
    cmd = [sys.executable, "-m", "server.cli", "--data-dir", str(data_dir), "pipeline", "stream", "--url", broker.url,
           "--model", "shuttle-rf", "--batch", str(batch), *([] if bronze else ["--no-bronze"])]
    with open(root / "consumer.log", "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    sink = pipeline_dir / "scores.sqlite"
    try:
        # the consumer is ready when it has scored a warm-up event (model loaded, kernels compiled)
        warm = frame_events([{"event_id": "warm-up", "device": "d", "ts": "2026-01-01T00:00:00Z",
                              **{f"f{i}": 0 for i in range(1, 10)}}], "event_id", "device", "ts")
        asyncio.run(publish_run(broker.url, names, warm, rate=0))
        deadline = time.monotonic() + 300
        while not (sink.exists() and read_scores(sink)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"consumer did not start: {(root / 'consumer.log').read_text()[-2000:]}")
            time.sleep(0.1)
        sent, publish_s = asyncio.run(publish_run(broker.url, names, messages, rate))
        deadline = time.monotonic() + 300
        while len(read_scores(sink)) < len(messages) + 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the sink did not get every event within 300 s")
            time.sleep(0.2)
        rows = {e: w for e, _, _, w in read_scores(sink)}
        lat = np.array([rows[e] - t for e, t in sent.items()])
        first, last = min(sent.values()), max(rows[e] for e in sent)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        broker.stop()
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    return {"bronze": bronze, "batch": batch, "events": len(messages), "target_rate": rate,
            "published_rate": len(messages) / publish_s,
            "scored_rate": len(messages) / (last - first), "p50_s": float(p50), "p95_s": float(p95),
            "p99_s": float(p99), "max_s": float(lat.max())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=5000.0, help="events per second published")
    ap.add_argument("--seconds", type=float, default=10.0, help="how long to publish")
    ap.add_argument("--data-dir", help="where the registered models are (default: a temporary dir, trained)")
    ap.add_argument("--batch", type=int, default=2000, help="the consumer's messages per fetch (per bronze commit)")
    ap.add_argument("--quick", action="store_true", help="2,000 events/s for 3 s")
    args = ap.parse_args(argv)
    if args.quick:
        args.rate, args.seconds = 2000.0, 3.0
    messages = events(int(args.rate * args.seconds))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp:
        data_dir = Path(args.data_dir) if args.data_dir else Path(tmp) / "data"
        ensure_model(data_dir)
        for bronze in (True, False):
            root = Path(tmp) / ("bronze" if bronze else "no-bronze")
            results.append(one_config(root, data_dir, messages, args.rate, bronze, args.batch))
    print(machine_line())
    rows = [["published -> in the sink", f"{'bronze on' if r['bronze'] else 'no bronze'}, batch {r['batch']}",
             r["events"],
             f"{r['target_rate']:.0f} / {r['published_rate']:.0f} / {r['scored_rate']:.0f}",
             f"{r['p50_s'] * 1000:.0f}", f"{r['p95_s'] * 1000:.0f}", f"{r['p99_s'] * 1000:.0f}",
             f"{r['max_s'] * 1000:.0f}"] for r in results]
    print(markdown_table(["what", "config", "events", "events/s target / published / scored", "p50 ms", "p95 ms",
                          "p99 ms", "max ms"], rows))
    path = write_json("streaming", {"rate": args.rate, "seconds": args.seconds, "batch": args.batch,
                                    "results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
