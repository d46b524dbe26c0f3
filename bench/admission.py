"""Admission under overload: twice the sustainable load, with and without SLO-derived admission.

A row or request count bounds memory, not latency: past the sustainable rate every queued request
waits longer and the p95 of *all* of them grows without bound. SLO-derived admission refuses at
once (RESOURCE_EXHAUSTED) what the queue cannot serve in time, so the requests it accepts keep
their latency. This bench measures both on the same server build and the same seeded arrivals:

1. unloaded latency (one client, one request at a time);
2. the sustainable rate (a closed loop at the concurrency the server is sized for);
3. an open loop (Poisson arrivals, timed from when each was due) at ``--overload`` x that rate,
   on three servers: admission off; absolute limits taken from the SLO file
   (deployments/configs/slo.yaml: the anomaly queue delay at half the latency objective, the LLM's
   expected time to first token at the TTFT objective); and the defaults (admission relative to
   each request's own unloaded latency: ``coalescing.admission_factor``, ``llm.admission``).

Reported per workload and server: accepted requests' p95 (TTFT p95 for the LLM) against the
unloaded value and the objective, the shed share, and goodput (accepted requests that met the SLO
per second). The CPU is printed; absolute numbers move with the machine, the ratios are the result.

    python -m bench.admission [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from bench.anomaly_load import closed_loop
from bench.llm_serving import PROMPTS
from bench.loadgen import (
    anomaly_open_loop,
    grpc_streamer,
    llm_closed_loop,
    llm_open_loop,
    llm_request,
    percentiles_ms,
    poisson_schedule,
)
from bench.report import RESULTS, machine, machine_line, markdown_table, write_json, write_text
from server.anomaly.data import load_shuttle
from server.client import AnomalyClient, AsyncAnomalyClient, AsyncLLMClient, LLMClient, score_request
from server.launcher import start_server
from server.slo.objectives import load_slo_file

console = Console(stderr=True)
MODEL = "shuttle-rf"


def slo_limits() -> dict[str, float]:
    """The admission limits the SLO file implies (and the objectives they are judged against)."""
    objectives = {o.name: o for o in load_slo_file().objectives}
    latency_ms = float(objectives["anomaly-latency-p95"].threshold)
    ttft_ms = float(objectives["llm-ttft-p95"].threshold)
    return {"anomaly_p95_ms": latency_ms, "max_queue_delay_ms": latency_ms / 2,
            "llm_ttft_p95_ms": ttft_ms, "max_expected_ttft_s": ttft_ms / 1000}


MODES = ("off", "slo", "relative")
LABELS = {"off": "admission off", "slo": "SLO limits (absolute)", "relative": "relative, per class"}


def server_env(admission: str, limits: dict[str, float]) -> dict[str, str]:
    """``off``: no admission; ``slo``: absolute limits from the SLO file (the old opt-in);
    ``relative``: admission relative to each request (the defaults of both workloads)."""
    env = {"STACKSERVE__RAG__ENABLED": "false", "STACKSERVE__ROLLOUT__MODEL": ""}
    if admission != "relative":
        env["STACKSERVE__COALESCING__ADMISSION"] = "false"
        env["STACKSERVE__LLM__ADMISSION__ENABLED"] = "false"
    else:  # the defaults, said explicitly so a changed default does not change what this measures
        env["STACKSERVE__COALESCING__ADMISSION"] = "true"
        env["STACKSERVE__LLM__ADMISSION__ENABLED"] = "true"
    if admission == "slo":
        env["STACKSERVE__COALESCING__MAX_QUEUE_DELAY_MS"] = str(limits["max_queue_delay_ms"])
        env["STACKSERVE__LLM__MAX_EXPECTED_TTFT_S"] = str(limits["max_expected_ttft_s"])
    return env


async def anomaly_unloaded(address: str, requests: list, n: int) -> dict[str, float]:
    async with AsyncAnomalyClient(address) as c:
        latencies = []
        for i in range(n):
            t0 = time.perf_counter()
            await c.stub.Score(requests[i % len(requests)], timeout=30)
            latencies.append((time.perf_counter() - t0) * 1e3)
    return percentiles_ms(latencies[max(1, n // 10):])  # the first calls warm caches


async def llm_unloaded(address: str, n: int, max_tokens: int) -> dict[str, float]:
    async with AsyncLLMClient(address) as c:
        stream = grpc_streamer(c, max_tokens, 120)
        ttft = [(await llm_request(stream, PROMPTS[i % len(PROMPTS)], time.perf_counter()))["ttft_ms"]
                for i in range(n + 1)]
    return percentiles_ms(ttft[1:])


async def llm_load(address: str, fn: str, *args: Any) -> dict[str, Any]:
    async with AsyncLLMClient(address) as c:
        stream = grpc_streamer(c, args[-1], 120)
        if fn == "closed":
            return await llm_closed_loop(stream, args[0], args[1])
        return await llm_open_loop(stream, args[0], drain_s=120)


def shed_share(r: dict[str, Any]) -> float:
    return r["errors"] / max(1, r["scheduled"])


def run_server(admission: str, limits: dict[str, float], requests: list, args: argparse.Namespace,
               rates: dict[str, float], workdir: Path) -> dict[str, Any]:
    """One server: (when not yet known) the unloaded latencies and sustainable rates, then the overload."""
    out: dict[str, Any] = {"admission": admission}
    with start_server(["--train-if-missing"], workdir=workdir, env=server_env(admission, limits),
                      ready_timeout=600) as server:
        with AnomalyClient(server.address) as c:
            c.wait_ready(600)
        with LLMClient(server.address) as c:
            c.wait_ready(600)
        # every server warms up the same way (unloaded calls) before its overload: a cold server's
        # first calls are slow and its admission has timed nothing yet
        console.print("anomaly: unloaded")
        out["anomaly_unloaded"] = asyncio.run(anomaly_unloaded(server.address, requests, args.unloaded))
        console.print("llm: unloaded")
        out["llm_unloaded"] = asyncio.run(llm_unloaded(server.address, args.unloaded // 10, args.max_tokens))
        if "anomaly" not in rates:
            console.print("anomaly: the sustainable rate (closed loop)")
            closed = asyncio.run(closed_loop(server.address, (), requests, args.anomaly_conc, args.seconds))
            rates["anomaly"] = closed["req_per_s"]
            out["anomaly_closed"] = {k: v for k, v in closed.items() if k != "latencies_ms"}
            console.print("llm: the sustainable rate (closed loop)")
            llm_closed = asyncio.run(llm_load(server.address, "closed", args.llm_conc, 2, args.max_tokens))
            rates["llm"] = llm_closed["req_per_s"]
            out["llm_closed"] = {k: v for k, v in llm_closed.items() if not isinstance(v, list)}
        rng = np.random.default_rng(7)
        a_rate = args.overload * rates["anomaly"]
        console.print(f"anomaly: open loop at {a_rate:.0f} req/s (admission: {admission})")
        schedule = poisson_schedule(a_rate, args.seconds, rng)
        out["anomaly_overload"] = asyncio.run(anomaly_open_loop(server.address, (), requests, schedule, 30.0))
        l_rate = args.overload * rates["llm"]
        console.print(f"llm: open loop at {l_rate:.2f} req/s (admission: {admission})")
        schedule = poisson_schedule(l_rate, args.llm_seconds, rng)
        out["llm_overload"] = asyncio.run(llm_load(server.address, "open", schedule, args.max_tokens))
    return out


def rows(runs: list[dict[str, Any]], base: dict[str, Any], limits: dict[str, float],
         seconds: dict[str, float], events: int, rates: dict[str, float]) -> list[list[str]]:
    out = []
    a_unloaded = base["anomaly_unloaded"]["p95_ms"]
    l_unloaded = base["llm_unloaded"]["p95_ms"]
    for r in runs:
        label = LABELS[r["admission"]]
        a = r["anomaly_overload"]
        lat = np.asarray(a["latencies_ms"])
        good = int((lat <= limits["anomaly_p95_ms"]).sum())
        out.append([f"anomaly Score ({events} ev)", label, f"{a['offered_per_s']:.0f}", f"{a['p95_ms']:.1f}",
                    f"{a['p95_ms'] / a_unloaded:.2f}x", f"{limits['anomaly_p95_ms']:.0f}",
                    f"{100 * shed_share(a):.1f}%", ", ".join(a["error_kinds"]) or "-",
                    f"{a['refused_p95_ms']:.1f}", f"{100 * a['req_per_s'] / rates['anomaly']:.0f}%",
                    f"{good / seconds['anomaly']:.0f}"])
        m = r["llm_overload"]
        ttft = np.asarray(m["ttft_ms"])
        good = int((ttft <= limits["llm_ttft_p95_ms"]).sum())
        out.append(["LLM stream (TTFT)", label, f"{m['offered_per_s']:.2f}", f"{m['ttft_p95_ms']:.0f}",
                    f"{m['ttft_p95_ms'] / l_unloaded:.1f}x", f"{limits['llm_ttft_p95_ms']:.0f}",
                    f"{100 * shed_share(m):.1f}%", ", ".join(m["error_kinds"]) or "-",
                    f"{m['refused_p95_ms']:.1f}", f"{100 * m['req_per_s'] / rates['llm']:.0f}%",
                    f"{good / seconds['llm']:.2f}"])
    return out


def plot(runs: list[dict[str, Any]], limits: dict[str, float]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for r in runs:
        label = LABELS[r["admission"]]
        for a, values in ((ax[0], r["anomaly_overload"]["latencies_ms"]), (ax[1], r["llm_overload"]["ttft_ms"])):
            v = np.sort(np.asarray(values, dtype=float))
            if v.size:
                a.plot(v, np.arange(1, v.size + 1) / v.size, label=f"{label} (accepted {v.size})")
    ax[0].axvline(limits["anomaly_p95_ms"], color="grey", ls="--", label="objective")
    ax[1].axvline(limits["llm_ttft_p95_ms"], color="grey", ls="--", label="objective")
    ax[0].set_xlabel("anomaly Score latency of accepted requests (ms)")
    ax[1].set_xlabel("LLM TTFT of accepted requests (ms)")
    for a in ax:
        a.set_xscale("log")
        a.set_ylabel("CDF")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle("2x the sustainable load: latency of what was accepted")
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "admission.png", dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter loads (CI smoke)")
    ap.add_argument("--events", type=int, default=4096,
                    help="events per Score request: above the in-gateway limit, so the coalescer and the Ray "
                    "replicas serve it, and large enough that the client's per-request cost does not bound the rate")
    ap.add_argument("--overload", type=float, default=2.0, help="offered load as a multiple of the sustainable rate")
    args = ap.parse_args()
    args.seconds = 6.0 if args.quick else 15.0
    args.llm_seconds = 15.0 if args.quick else 40.0
    args.unloaded = 50 if args.quick else 200
    args.anomaly_conc, args.llm_conc, args.max_tokens = 16, 16, 32
    limits = slo_limits()
    X = load_shuttle().drop(columns=["anomaly"]).to_numpy(np.float32)
    requests = [score_request(X[i * args.events:(i + 1) * args.events], MODEL) for i in range(8)]
    rates: dict[str, float] = {}
    runs = []
    with tempfile.TemporaryDirectory() as d:
        for admission in MODES:
            workdir = Path(d) / admission
            workdir.mkdir()
            runs.append(run_server(admission, limits, requests, args, rates, workdir))
    base = runs[0]
    seconds = {"anomaly": args.seconds, "llm": args.llm_seconds}
    headers = ["workload", "server", "offered /s", "accepted p95 ms", "vs unloaded p95", "objective ms",
               "shed", "refusals", "refused p95 ms", "accepted / sustainable", "goodput /s"]
    table = markdown_table(headers, rows(runs, base, limits, seconds, args.events, rates))
    print(machine_line())
    print(f"unloaded p95: anomaly {base['anomaly_unloaded']['p95_ms']:.1f} ms, LLM TTFT "
          f"{base['llm_unloaded']['p95_ms']:.0f} ms; sustainable: anomaly {rates['anomaly']:.0f} req/s "
          f"(closed loop, {args.anomaly_conc} clients), LLM {rates['llm']:.2f} req/s ({args.llm_conc} streams, "
          f"{args.max_tokens} tokens); offered {args.overload:g}x those")
    print(f"TTFT p95 at the sustainable rate (closed loop, every slot busy): "
          f"{base['llm_closed']['ttft_p95_ms']:.0f} ms: a new stream waits for a step of all the others")
    print(f"limits from the SLO file: coalescing.max_queue_delay_ms={limits['max_queue_delay_ms']:g}, "
          f"llm.max_expected_ttft_s={limits['max_expected_ttft_s']:g}\n")
    print(table)
    strip = [{k: ({kk: vv for kk, vv in v.items() if not isinstance(vv, list) or kk in ("ttft_ms", "latencies_ms")}
                  if isinstance(v, dict) else v) for k, v in r.items()} for r in runs]
    write_json("admission", {"machine": machine(), "limits": limits, "rates": rates, "runs": strip,
                             "overload": args.overload})
    write_text("admission.md", table + "\n")
    plot(runs, limits)
    ok = all(math.isfinite(r["llm_overload"]["ttft_p95_ms"]) for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
