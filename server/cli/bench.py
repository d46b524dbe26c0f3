"""``stackserve slo`` (SLO attainment of a running server, or its alerting rules) and ``bench``
(the benchmark harness, from a checkout)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.cli.common import (
    Subparsers,
    add_command,
    cli_settings,
    rich_console,
)


def cmd_slo(args: argparse.Namespace) -> int:
    """Objectives, goodput and cost of a running server (from its /metrics), or its alerting rules."""
    from server.slo.objectives import load_slo_file

    settings = cli_settings(args)
    try:
        slo = load_slo_file(args.file or settings.slo.file)
    except ValueError as exc:
        print(f"stackserve: {exc}", file=sys.stderr)
        return 2
    if args.rules:
        from server.slo.rules import alert_rules_yaml

        Path(args.rules).write_text(alert_rules_yaml(slo))
        print(f"wrote {len(slo.objectives)} objectives' alerting rules to {args.rules}")
        return 0
    from rich.table import Table

    from server.slo.table import objective_rows, scrape, workload_rows

    url = args.metrics_url or f"http://{settings.gateway.host}:{settings.gateway.metrics_port}/metrics"
    try:
        series = scrape(url, timeout=args.timeout)
    except OSError as exc:
        print(f"stackserve: cannot read {url}: {exc}", file=sys.stderr)
        return 1
    rows = objective_rows(series)
    if not rows:
        print(f"{url}: no SLO series (is slo.enabled off on that server?)", file=sys.stderr)
        return 1
    table = Table(title=f"SLOs at {url}")
    for col in ("objective", "workload", "indicator", "value", "target", "requests", "state", "burn rate"):
        table.add_column(col)
    for r in rows:
        table.add_row(*r)
    rich_console().print(table)
    wt = Table(title="goodput and cost")
    for col in ("workload", "requests/s", "goodput/s", "USD/hour", "USD per 1K tokens", "USD per 1M events"):
        wt.add_column(col)
    for r in workload_rows(series):
        wt.add_row(*r)
    rich_console().print(wt)
    return 0


def _bench_argv(args: argparse.Namespace) -> list[str]:
    """The parsed ``bench`` options as arguments again, for ``python -m bench.harness``."""
    argv: list[str] = []
    for flag, value in (("--config", args.config), ("--data-dir", args.data_dir), ("--log-level", args.log_level),
                        ("--workloads", args.workloads), ("--duration", args.duration), ("--out", args.out)):
        if value is not None:
            argv += [flag, str(value)]
    return argv + [flag for flag, on in (("--quick", args.quick), ("--gate", args.gate)) if on]


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the checkout's bench/harness.py in a child interpreter rather than importing it: server/
    never imports bench/ (the layers point one way: tests/unit/test_architecture.py), and bench/ is
    not installed with the package, only checked out next to server/."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[2]  # server/cli/bench.py -> the checkout
    if not (root / "bench" / "harness.py").is_file():
        print(f"stackserve bench: needs a source checkout (no bench/harness.py under {root})", file=sys.stderr)
        return 2
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([sys.executable, "-m", "bench.harness", *_bench_argv(args)],
                            env={**os.environ, "PYTHONPATH": path})
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the harness as well: it stops its server, then exits
            continue


def add_slo(sub: Subparsers) -> None:
    sl = add_command(sub, "slo", help="SLO attainment, goodput and cost of a running server; --rules: alerting rules")
    sl.add_argument("--metrics-url", help="default: http://<gateway.host>:<gateway.metrics_port>/metrics")
    sl.add_argument("--file", help="the SLO file (default: slo.file, else deployments/configs/slo.yaml)")
    sl.add_argument("--rules", metavar="FILE", help="write Prometheus alerting rules for the objectives and exit")
    sl.add_argument("--timeout", type=float, default=10.0)
    sl.set_defaults(func=cmd_slo)


def add_bench(sub: Subparsers) -> None:
    bn = add_command(sub, "bench", help="benchmark harness: one server, every workload's load vs its peer, goodput, "
                        "cost, plots and an HTML page under bench/results/ (from a checkout)")
    bn.add_argument("--quick", action="store_true", help="CI-sized run: fewer load levels, short cells")
    bn.add_argument("--gate", action="store_true", help="exit 1 when a same-run ratio is below its threshold "
                    "(bench/gate.py: gateway vs Ray proxy, gRPC vs in-process LLM)")
    bn.add_argument("--workloads", default="anomaly,llm,rag",
                    help="comma list of anomaly,llm,rag (default: all; rag = retrieval Search and chat Ask)")
    bn.add_argument("--duration", type=float, help="seconds per anomaly cell (default 5, quick 2); LLM open-loop "
                    "cells run 4x as long")
    bn.add_argument("--out", type=Path, help="output folder (default: bench/results/<timestamp>)")
    bn.set_defaults(func=cmd_bench)
