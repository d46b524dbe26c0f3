"""Twice the sustainable load on the session's server, with the default admission, for both
workloads: whatever is refused is RESOURCE_EXHAUSTED and refused at once (not after queueing as
long as an accepted call), and what is accepted keeps a bounded latency and most of the rate.

The bounds are loose on purpose (the client shares the server's 2 cores, and CI machines are noisy):
they separate admission from none at all (accepted p95 ~40-56x unloaded with it off, 1.5-2x with
it in bench/admission.py), not 2.0x from 2.3x; the benchmark reports the exact ratios."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bench.admission import anomaly_unloaded, llm_unloaded
from bench.anomaly_load import closed_loop
from bench.loadgen import anomaly_open_loop, grpc_streamer, llm_closed_loop, llm_open_loop, poisson_schedule
from server.anomaly.data import load_shuttle
from server.client import AsyncLLMClient, score_request

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
EVENTS = 4096  # per Score request: above the in-gateway limit, so the coalescer and the replicas serve it


def shuttle_requests(n: int = 8) -> list:
    X = load_shuttle().drop(columns=["anomaly"]).to_numpy(np.float32)
    return [score_request(X[i * EVENTS:(i + 1) * EVENTS], "shuttle-rf") for i in range(n)]


@pytest.mark.timeout(240)
def test_anomaly_overload_is_refused_at_once_and_accepted_latency_stays_bounded(server):
    requests = shuttle_requests()
    unloaded = asyncio.run(anomaly_unloaded(server.address, requests, 40))["p95_ms"]
    # the sustainable rate: a closed loop the admission lets through (two in flight); at 16 clients
    # the refused ones would retry at once and count nothing
    sustainable = asyncio.run(closed_loop(server.address, (), requests, 2, 4.0))
    assert sustainable["errors"] == 0, sustainable["error_kinds"]
    rate = sustainable["req_per_s"]
    schedule = poisson_schedule(2 * rate, 6.0, np.random.default_rng(3))
    over = asyncio.run(anomaly_open_loop(server.address, (), requests, schedule, 30.0))
    summary = (f"unloaded p95 {unloaded:.1f} ms, sustainable {rate:.0f}/s; at 2x: accepted {over['req_per_s']:.0f}/s "
               f"p95 {over['p95_ms']:.1f} ms, refused {over['errors']} (p50 {np.median(over['refused_ms']):.1f}, "
               f"p95 {over['refused_p95_ms']:.1f} ms), "
               f"{over['error_kinds']}")
    assert over["error_kinds"] in ([], ["RESOURCE_EXHAUSTED"]), summary
    assert over["errors"] > 0, f"twice the sustainable rate must shed something: {summary}"
    # refused at once: not after waiting behind the admitted work. Time before the handler runs
    # (receiving 147 KB on cores the client shares) is in every call, refused or not: a typical
    # refusal takes no longer than an unloaded call, and the slow ones no longer than accepted ones
    # (the slowest refusals waited there too: 704 ms p95 once in CI, so only the typical one is held)
    refused = np.asarray(over["refused_ms"])
    assert np.percentile(refused, 50) < max(unloaded, 20.0), summary
    # ~46x with admission off; 1.5-2x in bench/admission on a quiet machine, ~10x once in CI with the
    # whole session server (LLM, retriever) on the same 2 cores
    assert over["p95_ms"] < 15 * unloaded, summary
    assert over["req_per_s"] > 0.6 * rate, summary  # the accepted rate: not shed for nothing


@pytest.mark.timeout(240)
def test_llm_overload_is_refused_at_once_and_accepted_ttft_stays_bounded(server):
    max_tokens = 16

    async def load(kind: str, *args):
        async with AsyncLLMClient(server.address) as c:
            stream = grpc_streamer(c, max_tokens, 60)
            if kind == "closed":
                return await llm_closed_loop(stream, *args)
            return await llm_open_loop(stream, *args)

    unloaded = asyncio.run(llm_unloaded(server.address, 8, max_tokens))["p95_ms"]
    # every slot busy (max_num_seqs 4 in the session's LLM config), nothing refused
    sustainable = asyncio.run(load("closed", 4, 3))
    assert sustainable["errors"] == 0, sustainable["error_kinds"]
    rate = sustainable["req_per_s"]
    schedule = poisson_schedule(2 * rate, 8.0, np.random.default_rng(5))
    over = asyncio.run(load("open", schedule, 60.0))
    summary = (f"unloaded TTFT p95 {unloaded:.0f} ms, sustainable {rate:.1f}/s; at 2x: accepted "
               f"{over['req_per_s']:.1f}/s TTFT p95 {over['ttft_p95_ms']:.0f} ms, refused {over['errors']} "
               f"(p95 {over['refused_p95_ms']:.0f} ms), {over['error_kinds']}")
    assert over["error_kinds"] in ([], ["RESOURCE_EXHAUSTED"]), summary
    assert over["errors"] > 0, f"twice the sustainable rate must shed something: {summary}"
    # refused at once: within about one engine step, not after a prefill's worth of queueing
    assert over["refused_p95_ms"] < max(unloaded, 100.0), summary
    assert over["refused_p95_ms"] < over["ttft_p95_ms"], summary
    # the class's limit (2x its unloaded TTFT, floor 0.25 s) plus the steps it was estimated from
    assert over["ttft_p95_ms"] < 1000.0, summary
    assert over["req_per_s"] > 0.6 * rate, summary
