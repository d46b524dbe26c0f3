"""Closed-loop gRPC load on the anomaly path: our gateway vs Ray Serve's own gRPC proxy.

Both targets serve the *same* models from one server process, started once for the run; only
the front door differs: our gateway scores requests of up to ``anomaly.in_gateway_max_events``
with its own copy of the models and coalesces larger ones before they cross into Ray; Ray's
proxy sends each request across to the AnomalyScorer deployment. For
each target, events per request (1 and 256) and concurrency (1, 16, 64), the client
keeps N requests in flight for a fixed time and records every latency.

    python -m bench.anomaly_load [--quick] [--duration S] [--check]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress

from bench.report import RESULTS, machine_line, markdown_table, spread, write_json, write_text
from server.anomaly.data import load_shuttle
from server.client import AsyncAnomalyClient, score_request
from server.eventloop import run_async
from server.launcher import free_port, start_server

console = Console(stderr=True)
TARGETS = ("stackserve-gateway", "ray-serve-grpc-proxy")


async def closed_loop(address: str, metadata: tuple, requests: list, concurrency: int, duration: float) -> dict:
    """N workers, each with one request in flight, for `duration` seconds after a short warm-up."""
    from bench.loadgen import timed_closed_loop

    # a few channels so HTTP/2 flow control on one connection is not the bottleneck
    clients = [AsyncAnomalyClient(address) for _ in range(min(4, concurrency))]
    stubs = [c.stub for c in clients]
    try:
        return await timed_closed_loop(
            lambda i, req: stubs[i % len(stubs)].Score(req, metadata=metadata, timeout=30),
            requests, concurrency, duration, min(1.0, duration / 3),
        )
    finally:
        for c in clients:
            await c.close()


def aggregate(target: str, events: int, conc: int, runs: list[dict]) -> dict:
    """Median throughput over runs (± half IQR); latency percentiles over every request of every run."""
    rates = [r["req_per_s"] for r in runs]
    med, half_iqr = spread(rates)
    lat = np.concatenate([np.asarray(r["latencies_ms"]) for r in runs]) if runs else np.array([])
    pct = (lambda q: float(np.percentile(lat, q))) if lat.size else (lambda q: float("nan"))
    return {
        "target": target,
        "events": events,
        "concurrency": conc,
        "req_per_s": med,
        "req_per_s_half_iqr": half_iqr,
        "req_per_s_runs": rates,
        "events_per_s": med * events,
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "errors": sum(r["errors"] for r in runs),
        "latencies_ms": lat.round(4).tolist(),
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for target in TARGETS:
        for events in sorted({r["events"] for r in results}):
            rows = sorted(
                (r for r in results if r["target"] == target and r["events"] == events), key=lambda r: r["concurrency"]
            )
            if not rows:
                continue
            c = [r["concurrency"] for r in rows]
            style = "-o" if target == TARGETS[0] else "--s"
            axes[0].plot(c, [r["events_per_s"] for r in rows], style, label=f"{target}, {events} ev/req")
            axes[1].plot(c, [r["p95_ms"] for r in rows], style, label=f"{target}, {events} ev/req")
    axes[0].set(xscale="log", yscale="log", xlabel="concurrency", ylabel="events/s", title="throughput")
    axes[1].set(xscale="log", yscale="log", xlabel="concurrency", ylabel="p95 latency (ms)", title="p95 latency")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (CI)")
    ap.add_argument("--duration", type=float, help="seconds per cell and run (default 5, quick 2)")
    ap.add_argument("--runs", type=int, help="runs of every cell, interleaved; medians reported (default 3, quick 1)")
    ap.add_argument("--data-dir", type=Path, help="MLflow store with trained models (default: a temp dir)")
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = ap.parse_args()
    duration = args.duration or (2.0 if args.quick else 5.0)
    runs = args.runs or (1 if args.quick else 3)

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="stackserve-bench-"))
    from server.config import load_settings
    from server.demo import ensure_models

    settings = load_settings(None, data_dir=str(data_dir))
    ensure_models(settings)
    env = {"STACKSERVE_DATA_DIR": str(data_dir), "STACKSERVE__RAY__HTTP_PROXY_PORT": str(free_port())}
    server = start_server(workdir=data_dir, env=env, ray_grpc_port=free_port(), ready_timeout=300)
    console.print(f"server up: gateway {server.address}, Ray gRPC proxy {server.ray_grpc_address}")

    X = load_shuttle().drop(columns="anomaly").to_numpy(np.float32)
    rng = np.random.default_rng(0)
    payloads = {
        1: [score_request(X[i : i + 1], model="shuttle-rf") for i in rng.integers(0, len(X) - 1, 512)],
        256: [score_request(X[i : i + 256], model="shuttle-rf") for i in rng.integers(0, len(X) - 256, 64)],
    }
    targets = {
        "stackserve-gateway": (server.address, ()),
        "ray-serve-grpc-proxy": (server.ray_grpc_address, (("application", "anomaly"),)),
    }
    cells = [(t, e, c) for e in (1, 256) for c in (1, 16, 64) for t in TARGETS]
    samples: dict[tuple, list[dict]] = {cell: [] for cell in cells}
    try:
        with Progress(console=console) as progress:
            task = progress.add_task("load", total=len(cells) * runs)
            for run in range(runs):  # whole sweeps interleaved, so slow phases of a noisy machine hit both targets
                for target, events, conc in cells:
                    progress.update(task, description=f"run {run + 1}/{runs}: {target} {events} ev/req c={conc}")
                    addr, md = targets[target]
                    samples[(target, events, conc)].append(
                        run_async(closed_loop(addr, md, payloads[events], conc, duration))
                    )
                    progress.advance(task)
    finally:
        server.stop(timeout=60)
    results = [aggregate(target, events, conc, samples[(target, events, conc)]) for target, events, conc in cells]

    def cell(t: str, e: int, c: int) -> dict:
        return next(r for r in results if r["target"] == t and r["events"] == e and r["concurrency"] == c)

    rows = []
    for r in results:
        base = cell("ray-serve-grpc-proxy", r["events"], r["concurrency"])
        rows.append(
            [
                r["target"],
                r["events"],
                r["concurrency"],
                f"{r['req_per_s']:.0f} ± {r['req_per_s_half_iqr']:.0f}",
                f"{r['events_per_s']:.0f}",
                f"{r['p50_ms']:.2f}",
                f"{r['p95_ms']:.2f}",
                f"{r['p99_ms']:.2f}",
                r["errors"],
                f"{r['req_per_s'] / base['req_per_s']:.2f}x" if base["req_per_s"] else "-",
            ]
        )
    table = markdown_table(
        [
            "target",
            "events/req",
            "concurrency",
            "req/s (median ± IQR/2)",
            "events/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "errors",
            "throughput vs Ray proxy",
        ],
        rows,
    )
    one = cell(TARGETS[0], 1, 1)
    checks = [
        ("1 event/req c=1: p50 <= 1.5 ms", one["p50_ms"] <= 1.5, f"{one['p50_ms']:.2f} ms"),
        ("1 event/req c=1: p99 <= 5 ms", one["p99_ms"] <= 5.0, f"{one['p99_ms']:.2f} ms"),
    ]
    for c in (16, 64):
        ours, base = cell(TARGETS[0], 1, c), cell(TARGETS[1], 1, c)
        ratio = ours["req_per_s"] / max(base["req_per_s"], 1e-9)
        checks.append((f"1 event/req c={c}: throughput >= 5x Ray proxy", ratio >= 5, f"{ratio:.2f}x"))
        checks.append(
            (
                f"1 event/req c={c}: p95 <= Ray proxy",
                ours["p95_ms"] <= base["p95_ms"],
                f"{ours['p95_ms']:.2f} vs {base['p95_ms']:.2f} ms",
            )
        )
    best = max(r["events_per_s"] for r in results if r["target"] == TARGETS[0] and r["events"] == 256)
    checks.append(("256 events/req >= 200,000 events/s", best >= 200_000, f"{best:,.0f} events/s"))
    check_table = markdown_table(["target", "met", "measured"], [[n, "yes" if ok else "NO", v] for n, ok, v in checks])
    print(table)
    print()
    print(check_table)
    print(machine_line())
    write_json("anomaly_load", {"duration_s": duration, "runs": runs, "results": results, "checks": checks})
    write_text("anomaly_load.md", table + "\n\n" + check_table + "\n")
    plot(results, RESULTS / "anomaly_load.png")
    return 1 if args.check and not all(ok for _, ok, _ in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
