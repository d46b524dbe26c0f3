"""LLM serving overhead: the same workload over gRPC (``stackserve serve``) and in-process.

``--placement`` picks where the served engine runs (``llm.placement``): auto (the default: in the
gateway's process, since the server starts its own Ray instance here) or ray (the LLMEngine
deployment: gateway → Ray Serve → engine, a crossing per streamed message).

For concurrency 1, 4 and 16, each of `concurrency` clients sends streaming Generate requests back
to back (greedy, fixed output length); we report TTFT p50/p95, inter-token latency p95 and output
tokens/s, then run the identical workload against an ``LLMEngine`` in this process (the server
stopped first, so both get the same 2 cores). The ratio is the serving overhead.

    python -m bench.llm_serving [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from bench.report import RESULTS, machine, machine_line, markdown_table, write_json, write_text
from server.client import AsyncLLMClient, LLMClient
from server.config import LLMConfig
from server.launcher import start_server

console = Console(stderr=True)
PROMPTS = [f"Write a short note about topic number {i}:" for i in range(64)]


def summarize(target: str, conc: int, records: list[dict], wall: float) -> dict:
    ttft = np.array([r["ttft"] for r in records])
    itl = np.concatenate([r["itl"] for r in records]) if records else np.array([])
    tokens = sum(r["tokens"] for r in records)
    return {
        "target": target,
        "concurrency": conc,
        "requests": len(records),
        "ttft_p50_ms": float(np.percentile(ttft, 50) * 1e3),
        "ttft_p95_ms": float(np.percentile(ttft, 95) * 1e3),
        "itl_p95_ms": float(np.percentile(itl, 95) * 1e3) if itl.size else float("nan"),
        "tokens_per_s": tokens / wall,
    }


async def grpc_load(address: str, conc: int, per_client: int, max_tokens: int, label: str = "gRPC") -> dict:
    records: list[dict] = []
    async with AsyncLLMClient(address) as llm:

        async def client(c: int) -> None:
            for j in range(per_client):
                prompt = PROMPTS[(c * per_client + j) % len(PROMPTS)]
                t0 = time.perf_counter()
                arrivals: list[tuple[float, int]] = []
                stream = llm.generate(prompt, timeout=300, max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
                async for msg in stream:
                    if msg.token_ids:
                        arrivals.append((time.perf_counter(), len(msg.token_ids)))
                records.append(_record(t0, arrivals))

        await asyncio.wait_for(client(0), 300)  # warm-up request
        records.clear()
        t = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(conc)))
        wall = time.perf_counter() - t
    return summarize(label, conc, records, wall)


def _record(t0: float, arrivals: list[tuple[float, int]]) -> dict:
    """Per-token gaps; a message carrying k tokens spreads its gap over them (what a reader sees)."""
    itl = []
    for (a, _), (b, k) in itertools.pairwise(arrivals):
        itl.extend([(b - a) / k] * k)
    return {"ttft": arrivals[0][0] - t0, "itl": np.array(itl), "tokens": sum(k for _, k in arrivals)}


async def inprocess_load(engine, conc: int, per_client: int, max_tokens: int) -> dict:
    from server.llm.params import SamplingParams

    records: list[dict] = []
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)

    async def client(c: int) -> None:
        for j in range(per_client):
            t0 = time.perf_counter()
            arrivals = []
            async for chunk in engine.generate(PROMPTS[(c * per_client + j) % len(PROMPTS)], params):
                if chunk.token_ids:
                    arrivals.append((time.perf_counter(), len(chunk.token_ids)))
            records.append(_record(t0, arrivals))

    await client(0)
    records.clear()
    t = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(conc)))
    wall = time.perf_counter() - t
    return summarize("in-process engine", conc, records, wall)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--placement", choices=["auto", "gateway", "ray"], default="auto", help="llm.placement")
    args = ap.parse_args()
    label = f"gRPC (llm.placement={args.placement})"
    concs = [1, 4, 16]
    max_tokens = 32 if args.quick else 64
    per_client = {1: 3, 4: 2, 16: 1} if args.quick else {1: 5, 4: 3, 16: 2}
    results = []
    with tempfile.TemporaryDirectory() as d:
        console.print("starting the server (Ray + gateway + LLM app) ...")
        # stopped on leaving the block, its Ray processes with it, so the in-process run gets every core
        env = {"STACKSERVE__LLM__PLACEMENT": args.placement}
        with start_server(["--train-if-missing"], workdir=Path(d), env=env, ready_timeout=600) as server:
            with LLMClient(server.address) as c:
                c.wait_ready(600)
            for conc in concs:
                console.print(f"gRPC concurrency {conc}")
                results.append(asyncio.run(grpc_load(server.address, conc, per_client[conc], max_tokens, label)))
    from server.llm.engine import LLMEngine

    cfg = LLMConfig()
    engine = LLMEngine(cfg).start()
    try:
        for conc in concs:
            console.print(f"in-process concurrency {conc}")
            results.append(asyncio.run(inprocess_load(engine, conc, per_client[conc], max_tokens)))
    finally:
        engine.shutdown()

    base = {r["concurrency"]: r for r in results if r["target"] == "in-process engine"}
    rows = []
    for r in sorted(results, key=lambda r: (r["concurrency"], r["target"])):
        b = base[r["concurrency"]]
        rows.append(
            [
                r["target"],
                r["concurrency"],
                r["requests"],
                f"{r['ttft_p50_ms']:.1f}",
                f"{r['ttft_p95_ms']:.1f}",
                f"{r['itl_p95_ms']:.1f}",
                f"{r['tokens_per_s']:.1f}",
                f"{r['tokens_per_s'] / b['tokens_per_s']:.2f}x",
            ]
        )
    table = markdown_table(
        [
            "target",
            "concurrency",
            "requests",
            "TTFT p50 ms",
            "TTFT p95 ms",
            "ITL p95 ms",
            "output tok/s",
            "tok/s vs in-process",
        ],
        rows,
    )
    print(machine_line())
    print(f"backend {cfg.backend}, {max_tokens} output tokens per request, greedy\n")
    print(table)
    write_json(
        "llm_serving", {"machine": machine(), "backend": cfg.backend, "max_tokens": max_tokens, "results": results}
    )
    write_text("llm_serving.md", table + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(10, 4))
        for target in {r["target"] for r in results}:
            rs = sorted((r for r in results if r["target"] == target), key=lambda r: r["concurrency"])
            ax[0].plot([r["concurrency"] for r in rs], [r["tokens_per_s"] for r in rs], "o-", label=target)
            ax[1].plot([r["concurrency"] for r in rs], [r["ttft_p95_ms"] for r in rs], "o-", label=target)
        ax[0].set_ylabel("output tokens/s")
        ax[1].set_ylabel("TTFT p95 (ms)")
        for a in ax:
            a.set_xlabel("concurrent streams")
            a.set_xscale("log", base=2)
            a.grid(alpha=0.3)
            a.legend()
        fig.tight_layout()
        RESULTS.mkdir(parents=True, exist_ok=True)
        fig.savefig(RESULTS / "llm_serving.png", dpi=120)
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
