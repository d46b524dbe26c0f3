"""What the guardrails cost: input rails latency by prompt length, and the streaming output rails'
added time to first token and gap between chunks per window size, on the real engine in-process.

Input rails: ``InputRails.check_message`` on prompts of 200 to 2,000 characters (benign, so every
detector runs: a rule hit would return early), p50 / p95 over repeated calls; the target is
p95 ≤ 20 ms at 2,000 characters on 2 cores.

Streaming rails: the same requests (greedy, a ~256-token prompt) without rails and with
``StreamingRails`` at several (first window, window) sizes, interleaved, medians of the rounds:
time to first released text, p50 / p99 gap between released chunks. The target is ≤ 10 % added
time to first token at the chosen default window. The rails keep the scores of short texts (a
stream's opening words repeat across requests); the "cold cache" variants clear them before each
request, so the first judgement pays in full.

    python -m bench.guardrails [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import numpy as np
from rich.console import Console
from rich.progress import track

from bench.report import machine, machine_line, markdown_table, write_json
from server.guardrails.input_rails import InputRails
from server.guardrails.output_rails import TOXICITY_CACHE
from server.guardrails.streaming import StreamingRails, StreamRailConfig, guarded
from server.llm.params import SamplingParams
from server.llm.serving import LLMJob

console = Console(stderr=True)
BENIGN = ("The garbage collector in CPython frees objects whose reference count drops to zero, and a cycle "
          "detector handles reference cycles. Generations keep the cost low for young objects. ")
WINDOWS = ((1, 16), (2, 16), (4, 16), (8, 32), (16, 64))
TARGET_INPUT_P95_MS = 20.0
TARGET_TTFT_SHARE = 0.10
COLD = "cold cache"  # variants that forget the opening scores kept from earlier requests


def input_rails_latency(rails: InputRails, reps: int) -> list[dict]:
    rows = []
    for chars in (200, 1000, 2000):
        text = (BENIGN * (chars // len(BENIGN) + 1))[:chars]
        rails.check_message(text)  # warm
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            rails.check_message(text)
            samples.append((time.perf_counter() - t0) * 1e3)
        rows.append({"chars": chars, "p50_ms": float(np.percentile(samples, 50)),
                     "p95_ms": float(np.percentile(samples, 95))})
    return rows


async def _one(endpoint, rails_cfg: StreamRailConfig | None, classifier, rid: str, max_tokens: int,
               cold: bool = False) -> dict:
    # a prompt of ~256 tokens, as in `vllm bench serve`'s random workload, unique per request (starts with
    # its id) so the prefix cache does not serve it: TTFT is a real prefill
    job = LLMJob("chat", SamplingParams(max_tokens=max_tokens, temperature=0.0).validate(), True,
                 messages=(("user", f"[{rid}] " + BENIGN * 6 + "Explain how Python's garbage collector works."),))
    if cold:  # the opening's scores not kept from earlier requests: the first judgement pays in full
        classifier.short_texts.clear()
        TOXICITY_CACHE.clear()
    t0 = time.perf_counter()
    stream = endpoint.generate(job, 120.0, rid)
    if rails_cfg is not None:
        stream = guarded(stream, lambda p: p.text, StreamingRails(classifier, rails_cfg),
                         lambda p: max(1, len(p.token_ids)))
    stamps = []
    async for piece in stream:
        if piece.text:
            stamps.append(time.perf_counter() - t0)
    gaps = np.diff(stamps) * 1e3 if len(stamps) > 1 else np.zeros(1)
    return {"ttft_ms": stamps[0] * 1e3 if stamps else float("nan"), "gap_p50_ms": float(np.percentile(gaps, 50)),
            "gap_p99_ms": float(np.percentile(gaps, 99))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and rounds")
    args = parser.parse_args(argv)
    from server.config import load_settings
    from server.llm.engine import LLMEngine
    from server.llm.serving import AsyncEngine
    from server.rag.embedder import Embedder

    info = machine()
    console.print(machine_line(info))
    settings = load_settings(None)
    embedder = Embedder(precision=settings.rag.embedder.precision)
    rails = InputRails(embedder.encode)
    input_rows = input_rails_latency(rails, 20 if args.quick else 100)
    console.print(markdown_table(["prompt chars", "p50 ms", "p95 ms"],
                                 [[r["chars"], f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}"] for r in input_rows]))

    engine = LLMEngine(settings.llm).start()
    endpoint = AsyncEngine(engine, settings.llm.model_name)
    rounds = 3 if args.quick else 7
    variants: list[tuple[str, StreamRailConfig | None]] = [("no rails", None)] + [
        (f"{f} then {w}", StreamRailConfig(first_window=f, window=w)) for f, w in WINDOWS] + [
        (f"{f} then {w}, {COLD}", StreamRailConfig(first_window=f, window=w)) for f, w in WINDOWS[:2]]
    results: dict[str, list[dict]] = {name: [] for name, _ in variants}

    async def run() -> None:
        for r in track(range(rounds), description="streaming rails rounds", console=console):
            for name, cfg in variants:  # interleaved: drift in machine load hits every variant alike
                results[name].append(await _one(endpoint, cfg, rails.classifier, f"bench-{r}-{name}", 64,
                                                cold=name.endswith(COLD)))

    try:
        asyncio.run(run())
    finally:
        engine.shutdown()
    base = statistics.median(x["ttft_ms"] for x in results["no rails"])
    stream_rows = []
    for name, _ in variants:
        ttft = statistics.median(x["ttft_ms"] for x in results[name])
        stream_rows.append({"windows": name, "ttft_ms": ttft, "added_ttft_share": ttft / base - 1,
                            "gap_p50_ms": statistics.median(x["gap_p50_ms"] for x in results[name]),
                            "gap_p99_ms": statistics.median(x["gap_p99_ms"] for x in results[name])})
    console.print(markdown_table(
        ["windows (first, then)", "TTFT ms", "added TTFT", "gap p50 ms", "gap p99 ms"],
        [[r["windows"], f"{r['ttft_ms']:.0f}", f"{r['added_ttft_share']:+.1%}", f"{r['gap_p50_ms']:.0f}",
          f"{r['gap_p99_ms']:.0f}"] for r in stream_rows]))
    path = write_json("guardrails", {"machine": info, "input_rails": input_rows, "streaming_rails": stream_rows,
                                     "targets": {"input_p95_ms": TARGET_INPUT_P95_MS,
                                                 "added_ttft_share": TARGET_TTFT_SHARE}})
    console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
