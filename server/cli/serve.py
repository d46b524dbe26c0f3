"""``stackserve serve``, ``health`` and ``demo``: run the server, ask it whether it serves, or
run the scripted session against it."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from server.cli.common import (
    ADDRESS_HELP,
    Subparsers,
    add_command,
    cli_settings,
    serving_log_level,
)
from server.config import Settings

#: seconds a server whose launcher died has for its graceful stop (drain, Serve, the Ray head) before
#: it is killed: the stop takes 10-40 s on a loaded 2-core machine
LIFELINE_GRACE_S = 90.0


async def _serve(settings: Settings, use_ray: bool, ready_file: Path | None) -> None:
    from server.lifecycle import running_server
    from server.observability.logs import configure_logging

    configure_logging(serving_log_level())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signals() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

    on_signals()
    async with running_server(settings, use_ray=use_ray) as gateway:
        on_signals()  # Ray's core worker installs its own SIGTERM handler during ray.init: ours must win
        await gateway.wait_ready(settings.gateway.warmup_timeout_s)
        llm = gateway.llm.info.model if gateway.llm is not None and gateway.llm.info is not None else None
        scheme = "https" if settings.security.tls.enabled else "http"
        info = {
            "grpc": f"{settings.gateway.host}:{gateway.port}",
            "metrics": f"http://{settings.gateway.host}:{gateway.metrics_port}/metrics",
            "models": sorted(gateway.anomaly.scoring.catalog) if gateway.anomaly is not None else [],
            "llm": llm,
            "openai": None if gateway.openai_port is None else
            f"{scheme}://{settings.gateway.host}:{gateway.openai_port}/v1",
        }
        if ready_file:
            tmp = ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(info))
            tmp.replace(ready_file)
        print(f"stackserve ready: gRPC {info['grpc']}, metrics {info['metrics']}, models {info['models']}, "
              f"llm {llm or 'off'}", file=sys.stderr, flush=True)
        await stop.wait()
        print("stackserve: shutting down", file=sys.stderr, flush=True)


def _check_models(settings: Settings, train_if_missing: bool) -> bool:
    """Fail fast with a clear message instead of a replica traceback from inside Ray."""
    from server.anomaly import registry

    client = registry.connect(settings)
    cfg = settings.anomaly
    if any(registry.has_version(client, name, cfg.alias) for name in cfg.models):
        return True
    if train_if_missing:
        from server.demo import ensure_models

        ensure_models(settings)
        return True
    print(
        f"stackserve serve: none of {cfg.models} is registered with alias {cfg.alias!r} in "
        f"{settings.tracking_uri}. Run `stackserve train anomaly` first, or serve with --train-if-missing.",
        file=sys.stderr,
    )
    return False


def cmd_serve(args: argparse.Namespace) -> int:
    from server.process_guard import exit_with_starter
    from server.thread_budget import apply_environment

    budget = apply_environment()  # before torch, numba and FAISS are imported: they read their sizes once
    settings = cli_settings(args)
    if budget is not None:
        print(f"stackserve: thread budget {budget.as_dict()}", file=sys.stderr, flush=True)
    # started by server/launcher.py: stop with it (SIGTERM's drain, then SIGKILL past its grace)
    exit_with_starter(LIFELINE_GRACE_S)
    if settings.anomaly.enabled and not _check_models(settings, args.train_if_missing):
        return 2
    from server.eventloop import run_async
    from server.placement import needs_ray

    run_async(_serve(settings, use_ray=not args.no_ray and needs_ray(settings), ready_file=args.ready_file))
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    import grpc

    from server.client import AnomalyClient

    with AnomalyClient(args.address) as client:
        try:
            status = client.health(args.service, timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"{args.address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    print(f"{args.address} {args.service or '(server)'}: {status}")
    return 0 if status == "SERVING" else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from server.demo import run_demo

    return run_demo(cli_settings(args), use_ray=not args.no_ray)


def add_serve(sub: Subparsers) -> None:
    s = add_command(sub, "serve", help="start Ray, the Serve app and the gRPC gateway until Ctrl-C")
    s.add_argument("--port", type=int, help="gRPC port (default 50051; 0 = any free port)")
    s.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (default 9464)")
    s.add_argument("--openai-port", type=int, help="OpenAI-compatible HTTP API port (default 8080; 0: a free one)")
    s.add_argument("--no-ray", action="store_true", help="score in the gateway process, without Ray")
    s.add_argument("--llm-only", action="store_true",
                   help="serve only the LLM (gRPC LLMService and the OpenAI API) from this process: no Ray, no "
                   "anomaly models, no embedder (anomaly.enabled and rag.enabled off)")
    s.add_argument("--ray-grpc-port", type=int, help="also start Ray Serve's own gRPC proxy (benchmark baseline)")
    s.add_argument("--ready-file", type=Path, help="write the bound addresses here as JSON once SERVING")
    s.add_argument("--train-if-missing", action="store_true", help="train the default models if none is registered")
    s.set_defaults(func=cmd_serve)


def add_health(sub: Subparsers) -> None:
    h = add_command(sub, "health", help="gRPC health check")
    h.add_argument("--address", help=ADDRESS_HELP)
    h.add_argument("--service", default="", help="e.g. stackserve.v1.AnomalyService (default: whole server)")
    h.add_argument("--timeout", type=float, default=5.0)
    h.set_defaults(func=cmd_health)


def add_demo(sub: Subparsers) -> None:
    d = add_command(sub, "demo", help="train if needed, start everything, run a scripted client session, stop")
    d.add_argument("--port", type=int, default=0)
    d.add_argument("--metrics-port", type=int, default=0)
    d.add_argument("--openai-port", type=int, default=0)
    d.add_argument("--no-ray", action="store_true")
    d.set_defaults(func=cmd_demo)
