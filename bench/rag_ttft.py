"""RAG time to first token over gRPC: ``ChatService.Ask`` at concurrency 1 and 4, with its breakdown.

The whole server as users run it (``stackserve serve``: Ray, the Embedder and LLM deployments, the
gateway) on the default corpus's store (ingested once into .bench-cache/rag-pydoc, shared with
bench.rag_eval). Questions are the evaluation set's, in order, so answerable, unanswerable and
refused ones mix as in use. Per request, from the client: time to the first draft piece (TTFT; only
requests that reach the model have one) and to the final message; from the server's final message:
embed, search, the rails' time on the path to the first token (``guard_ttft``), prefill (LLM call to
its first token, queueing in the engine included). The guardrail target is ``guard_ttft`` ≤ 10 % of
TTFT, reported as the median and p95 of that share.

    python -m bench.rag_ttft [--quick] [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from bench.report import RESULTS, machine, machine_line, markdown_table, write_json
from server.client import AsyncChatClient, ChatClient
from server.launcher import start_server

console = Console(stderr=True)
GUARD_SHARE_TARGET = 0.10
BREAKDOWN = ("embed_ms", "search_ms", "guard_ttft_ms", "prefill_ms", "server_first_token_ms")


async def load(address: str, questions: list[str], concurrency: int, max_tokens: int) -> list[dict]:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for q in questions:
        queue.put_nowait(q)
    out: list[dict] = []

    async def worker() -> None:
        async with AsyncChatClient(address) as c:
            while not queue.empty():
                q = queue.get_nowait()
                t0 = time.perf_counter()
                first = None
                final = None
                async for msg in c.ask(q, max_tokens=max_tokens, timeout=300):
                    if msg.text and first is None:
                        first = time.perf_counter() - t0
                    if msg.final:
                        final = msg
                total = time.perf_counter() - t0
                t = final.timings
                out.append({"question": q, "outcome": final.outcome, "ttft_ms": None if first is None else first * 1e3,
                            "total_ms": total * 1e3, "embed_ms": t.embed_ms, "search_ms": t.search_ms,
                            "guard_ttft_ms": t.guard_ttft_ms, "guard_ms": t.guard_ms, "prefill_ms": t.prefill_ms,
                            "server_first_token_ms": t.first_token_ms, "decode_ms": t.decode_ms})

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


def summarize(rows: list[dict], concurrency: int) -> dict:
    gen = [r for r in rows if r["ttft_ms"] is not None]
    pct = lambda xs, q: float(np.percentile(xs, q)) if len(xs) else float("nan")  # noqa: E731
    ttft = [r["ttft_ms"] for r in gen]
    total = [r["total_ms"] for r in rows]
    share = [r["guard_ttft_ms"] / r["server_first_token_ms"] for r in gen if r["server_first_token_ms"] > 0]
    return {
        "concurrency": concurrency, "requests": len(rows), "generated": len(gen),
        "ttft_p50_ms": pct(ttft, 50), "ttft_p95_ms": pct(ttft, 95),
        "answer_p50_ms": pct(total, 50), "answer_p95_ms": pct(total, 95),
        "breakdown_p50_ms": {k: pct([r[k] for r in gen], 50) for k in BREAKDOWN},
        "guard_share_of_ttft_p50": pct(share, 50), "guard_share_of_ttft_p95": pct(share, 95),
        "outcomes": {o: sum(r["outcome"] == o for r in rows) for o in sorted({r["outcome"] for r in rows})},
    }


def plot(runs: dict[int, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for conc, rows in runs.items():
        s = np.sort([r["ttft_ms"] for r in rows if r["ttft_ms"] is not None])
        ax.plot(s, np.arange(1, len(s) + 1) / max(1, len(s)), label=f"concurrency {conc}")
    ax.set_xlabel("time to first token, ms (client)")
    ax.set_ylabel("fraction of requests")
    ax.legend()
    parts = ("embed_ms", "search_ms", "guard_ttft_ms", "prefill_ms")
    bottom = np.zeros(len(runs))
    for p in parts:
        vals = [np.median([r[p] for r in rows if r["ttft_ms"] is not None] or [0]) for rows in runs.values()]
        ax2.bar([f"c={c}" for c in runs], vals, bottom=bottom, label=p.removesuffix("_ms"))
        bottom += vals
    ax2.set_ylabel("ms (median, server)")
    ax2.set_title("TTFT breakdown")
    ax2.legend()
    fig.suptitle(machine_line()[:100], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests")
    ap.add_argument("--requests", type=int, default=0, help="requests per concurrency level")
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    from bench.rag_eval import CACHE, EVAL_SET
    from server.rag.eval_runner import default_corpus_store
    from server.rag.evaluation import load_items

    n = args.requests or (12 if args.quick else 40)
    items = load_items(EVAL_SET)
    questions = [it.question for it in items][: max(n, 4)]
    store = default_corpus_store(CACHE)
    print(machine_line(), file=sys.stderr)
    runs: dict[int, list[dict]] = {}
    with tempfile.TemporaryDirectory() as d:
        console.print("starting the server (Ray: anomaly, Embedder and LLM apps; the gateway) ...")
        env = {"STACKSERVE__RAG__STORE_DIR": str(store)}
        with start_server(["--train-if-missing"], workdir=Path(d), env=env, ready_timeout=600) as server:
            with ChatClient(server.address) as c:
                c.wait_ready(600)
                for q in questions[:2]:  # warm-up: first calls load kernels and fill caches
                    list(c.ask(q, max_tokens=8))
            for conc in (1, 4):
                qs = questions[: max(4, n // 2)] if conc == 1 else questions[:n]
                console.print(f"concurrency {conc}: {len(qs)} questions")
                runs[conc] = asyncio.run(load(server.address, qs, conc, args.max_tokens))
    summaries = [summarize(rows, conc) for conc, rows in runs.items()]
    header = ["concurrency", "requests (generated)", "TTFT p50 / p95 ms", "answer p50 / p95 ms", "embed",
              "search", "guard on TTFT path", "prefill", "guard share of TTFT p50 / p95"]
    table = markdown_table(header, [[
        s["concurrency"], f"{s['requests']} ({s['generated']})", f"{s['ttft_p50_ms']:.0f} / {s['ttft_p95_ms']:.0f}",
        f"{s['answer_p50_ms']:.0f} / {s['answer_p95_ms']:.0f}",
        *(f"{s['breakdown_p50_ms'][k]:.1f}" for k in ("embed_ms", "search_ms", "guard_ttft_ms", "prefill_ms")),
        f"{s['guard_share_of_ttft_p50']:.1%} / {s['guard_share_of_ttft_p95']:.1%}"] for s in summaries])
    print(f"\n{machine_line()}\nbreakdown columns: server-side medians, ms\n{table}")
    write_json("rag_ttft", {"machine": machine(), "summaries": summaries, "requests": runs})
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rag_ttft.md").write_text(f"{machine_line()}\n\n{table}\n")
    plot(runs, RESULTS / "rag_ttft.png")
    worst = max(s["guard_share_of_ttft_p95"] for s in summaries)
    if worst > GUARD_SHARE_TARGET:
        print(f"guardrails take {worst:.1%} of TTFT at p95 (target {GUARD_SHARE_TARGET:.0%})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
