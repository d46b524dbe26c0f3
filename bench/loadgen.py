"""Load generators the harness adds to the ones in bench/anomaly_load.py and bench/llm_serving.py.

Closed loops (N clients, each waiting for its answer before sending again) hide queueing: when the
server slows down, the clients slow down with it and the latency they see stays flat. The open
loops here send on a Poisson schedule fixed before the run, each request as its own task, and time
every request from when it was *due*, not from when the client got round to sending it; a server
(or a client) that falls behind then shows up in the latency instead of vanishing from it
(coordinated omission).

The LLM loops take a ``Streamer`` (a prompt in, the token counts of the streamed messages out), so
one loop measures the gRPC path and the in-process engine alike: the "vs in-process" ratio then
compares the serving paths, not two pieces of measuring code.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
import numpy as np

from bench.llm_serving import PROMPTS, _record
from server.client import AsyncAnomalyClient, AsyncLLMClient

#: A prompt in, the number of tokens of each streamed message out (as they arrive).
Streamer = Callable[[str], AsyncIterator[int]]

#: Channels per open loop: one HTTP/2 connection's flow control would cap the rate, as in closed_loop.
CHANNELS = 4


class StreamFailed(Exception):
    """The in-process engine ended a request with an error (the gRPC path raises AioRpcError)."""


def poisson_schedule(rate: float, duration: float, rng: np.random.Generator) -> np.ndarray:
    """Send offsets (s from the start) of a Poisson process of ``rate``/s over ``duration`` s.

    Drawn up front from a seeded generator so that both targets of a cell, and two runs of the
    harness, get the same arrivals: differences are then the server's, not the dice's.
    """
    if rate <= 0 or duration <= 0:
        raise ValueError(f"rate and duration must be positive, got {rate}, {duration}")
    expected = rate * duration
    draws = int(expected + 6 * math.sqrt(expected) + 16)  # enough that a second draw is rare
    times = np.cumsum(rng.exponential(1.0 / rate, draws))
    while times[-1] < duration:
        times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(1.0 / rate, draws))])
    return times[times < duration]


def percentiles_ms(latencies_ms: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50/p95/p99 of the finite values; NaN when there are none, so an all-error cell reads as such."""
    a = np.asarray(latencies_ms, dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"p50_ms": math.nan, "p95_ms": math.nan, "p99_ms": math.nan}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)}


async def open_loop(
    schedule: np.ndarray, fire: Callable[[int, float], Awaitable[dict[str, Any]]], drain_s: float
) -> tuple[list[dict[str, Any]], float]:
    """Fire ``fire(i, due)`` at each scheduled offset without waiting for earlier ones to finish.

    Returns the records and the span from the start to the last completion (at least the
    schedule's length). Requests still running ``drain_s`` after the last send are cancelled and
    recorded as failed: the client gave up on them, and an overloaded peer must not stretch a cell
    without bound.
    """
    start = time.perf_counter()
    tasks: list[asyncio.Task[dict[str, Any]]] = []
    for i, offset in enumerate(schedule):
        due = start + float(offset)
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fire(i, due)))
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=drain_s)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    records = [t.result() if not t.cancelled() else _gave_up() for t in tasks]
    last_end = max((r["end"] for r in records if "end" in r), default=start)
    span = max(float(schedule[-1]) if len(schedule) else 0.0, last_end - start)
    return records, span


def _gave_up() -> dict[str, Any]:
    return {"failed": True, "latency_ms": math.nan, "error": "cancelled after the drain timeout"}


async def anomaly_open_loop(
    address: str, metadata: tuple, requests: Sequence[Any], schedule: np.ndarray, timeout_s: float
) -> dict[str, Any]:
    """Score requests on ``schedule``; the same keys as ``bench.anomaly_load.closed_loop`` returns."""
    clients = [AsyncAnomalyClient(address) for _ in range(CHANNELS)]

    async def fire(i: int, due: float) -> dict[str, Any]:
        try:
            await clients[i % CHANNELS].stub.Score(requests[i % len(requests)], metadata=metadata, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            end = time.perf_counter()
            return {"failed": True, "latency_ms": math.nan, "error": exc.code().name, "end": end,
                    "refused_ms": (end - due) * 1e3}
        end = time.perf_counter()
        return {"failed": False, "latency_ms": (end - due) * 1e3, "end": end}

    try:
        records, span = await open_loop(schedule, fire, drain_s=timeout_s)
    finally:
        for c in clients:
            await c.close()
    return summarize_open_loop(records, span, len(schedule))


def refusals(records: list[dict[str, Any]]) -> dict[str, Any]:
    """How fast failed calls failed (from when each was due): shedding must answer at once, not after
    the request has queued as long as an accepted one."""
    refused = [r["refused_ms"] for r in records if r["failed"] and "refused_ms" in r]
    return {"refused_p95_ms": percentiles_ms(refused)["p95_ms"], "refused_ms": np.round(refused, 4).tolist()}


def summarize_open_loop(records: list[dict[str, Any]], span: float, scheduled: int) -> dict[str, Any]:
    """Achieved throughput counts answered requests only: an offered rate the server drops is not served."""
    ok = np.asarray([r["latency_ms"] for r in records if not r["failed"]], dtype=float)
    errors = [r.get("error", "") for r in records if r["failed"]]
    return {
        **refusals(records),
        "scheduled": scheduled,
        "offered_per_s": scheduled / span if span > 0 else math.nan,
        "requests": int(ok.size),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "seconds": span,
        "req_per_s": ok.size / span if span > 0 else math.nan,
        **percentiles_ms(ok),
        "latencies_ms": ok.round(4).tolist(),
    }


# ----- LLM -----------------------------------------------------------------------------------
def grpc_streamer(client: AsyncLLMClient, max_tokens: int, timeout_s: float) -> Streamer:
    """Greedy, fixed-length generations over gRPC, as bench/llm_serving.py's grpc_load sends them."""

    async def stream(prompt: str) -> AsyncIterator[int]:
        call = client.generate(prompt, timeout=timeout_s, max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
        async for msg in call:
            if msg.token_ids:
                yield len(msg.token_ids)

    return stream


def engine_streamer(engine: Any, max_tokens: int) -> Streamer:
    """The same generations on an ``LLMEngine`` in this process (bench/llm_serving.py's inprocess_load)."""
    from server.llm.outputs import FinishReason
    from server.llm.params import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)

    async def stream(prompt: str) -> AsyncIterator[int]:
        async for chunk in engine.generate(prompt, params):
            if chunk.finish_reason is not None and not FinishReason(chunk.finish_reason).asked_for:
                raise StreamFailed(f"{chunk.finish_reason}: {chunk.error}")
            if chunk.token_ids:
                yield len(chunk.token_ids)

    return stream


async def llm_request(stream: Streamer, prompt: str, t0: float) -> dict[str, Any]:
    """One generation, timed from ``t0``; ``itl_p95_ms`` is the request's own p95 gap, as the SLO
    tracker records it (NaN with fewer than two tokens: no gap to judge)."""
    arrivals: list[tuple[float, int]] = []
    try:
        async for n in stream(prompt):
            arrivals.append((time.perf_counter(), n))
    except (grpc.RpcError, StreamFailed) as exc:
        code = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
        end = time.perf_counter()
        return {"failed": True, "error": code, "end": end, "refused_ms": (end - t0) * 1e3, **_no_tokens()}
    if not arrivals:
        return {"failed": True, "error": "no tokens", "end": time.perf_counter(), **_no_tokens()}
    r = _record(t0, arrivals)
    itl_ms = r["itl"] * 1e3
    return {
        "failed": False,
        "ttft_ms": r["ttft"] * 1e3,
        "latency_ms": (arrivals[-1][0] - t0) * 1e3,
        "itl_p95_ms": float(np.percentile(itl_ms, 95)) if itl_ms.size else math.nan,
        "itl_ms": itl_ms.round(4).tolist(),
        "tokens": r["tokens"],
        "end": arrivals[-1][0],
    }


def _no_tokens() -> dict[str, Any]:
    return {"ttft_ms": math.nan, "latency_ms": math.nan, "itl_p95_ms": math.nan, "itl_ms": [], "tokens": 0}


async def llm_closed_loop(stream: Streamer, concurrency: int, per_client: int) -> dict[str, Any]:
    """``concurrency`` clients, each sending ``per_client`` requests back to back after one warm-up
    request: the shape of bench/llm_serving.py's loads, so its numbers and these compare."""
    await llm_request(stream, PROMPTS[0], time.perf_counter())  # warm-up (first-call costs)
    records: list[dict[str, Any]] = []

    async def client(c: int) -> None:
        for j in range(per_client):
            prompt = PROMPTS[(c * per_client + j) % len(PROMPTS)]
            records.append(await llm_request(stream, prompt, time.perf_counter()))

    start = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(concurrency)))
    return summarize_llm(records, time.perf_counter() - start)


async def llm_open_loop(stream: Streamer, schedule: np.ndarray, drain_s: float) -> dict[str, Any]:
    """Generations on ``schedule``, each timed from when it was due (TTFT includes any queueing)."""

    async def fire(i: int, due: float) -> dict[str, Any]:
        return await llm_request(stream, PROMPTS[i % len(PROMPTS)], due)

    records, span = await open_loop(schedule, fire, drain_s)
    return {"scheduled": len(schedule), "offered_per_s": len(schedule) / span if span > 0 else math.nan,
            **summarize_llm(records, span)}


def summarize_llm(records: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    """TTFT and ITL as bench/llm_serving.py reports them (ITL p95 over every gap of every request),
    plus the per-request values goodput is judged on; failed requests count as errors only."""
    ok = [r for r in records if not r["failed"]]
    gaps = np.asarray([g for r in ok for g in r["itl_ms"]], dtype=float)
    ttft = np.asarray([r["ttft_ms"] for r in ok], dtype=float)
    tokens = sum(r["tokens"] for r in ok)
    pooled_itl_p95 = float(np.percentile(gaps, 95)) if gaps.size else math.nan
    ttft_pct = percentiles_ms(ttft)
    latency_pct = percentiles_ms([r["latency_ms"] for r in ok])
    return {
        **refusals(records),
        "requests": len(ok),
        "errors": len(records) - len(ok),
        "error_kinds": sorted({r.get("error", "") for r in records if r["failed"]}),
        "seconds": wall,
        "req_per_s": len(ok) / wall if wall > 0 else math.nan,
        "tokens": tokens,
        "tokens_per_s": tokens / wall if wall > 0 else math.nan,
        "ttft_p50_ms": ttft_pct["p50_ms"],
        "ttft_p95_ms": ttft_pct["p95_ms"],
        "itl_p95_ms": pooled_itl_p95,
        "p50_ms": latency_pct["p50_ms"],
        "p95_ms": latency_pct["p95_ms"],
        "ttft_ms": ttft.round(4).tolist(),
        "request_itl_p95_ms": [round(r["itl_p95_ms"], 4) for r in ok],
        "request_latency_ms": [round(r["latency_ms"], 4) for r in ok],
        "itl_ms": gaps.round(4).tolist(),
    }


# ----- retrieval and chat ----------------------------------------------------------------------
#: A query in, awaited until its hits are back (over gRPC, or the same engine in this process).
Searcher = Callable[[str], Awaitable[Any]]


async def timed_closed_loop(call: Callable[[int, Any], Awaitable[Any]], items: Sequence[Any], concurrency: int,
                            duration: float, warmup_s: float) -> dict[str, Any]:
    """N workers, each with one call in flight (``call(worker, item)``), for ``duration`` s after
    ``warmup_s`` s of the same load unrecorded; items are dealt round robin. The result keys are the
    ones every closed-loop table and plot reads (req/s, p50/p95/p99, errors, every latency)."""
    latencies: list[float] = []
    errors: list[str] = []
    stop_at = 0.0
    recording = False

    async def worker(i: int) -> None:
        k = i
        while time.perf_counter() < stop_at:
            item = items[k % len(items)]
            k += concurrency
            t0 = time.perf_counter()
            try:
                await call(i, item)
            except grpc.RpcError as exc:
                if recording:
                    errors.append(exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else str(exc))
                continue
            if recording:
                latencies.append((time.perf_counter() - t0) * 1e3)

    if warmup_s > 0:
        stop_at = time.perf_counter() + warmup_s
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    recording = True
    start = time.perf_counter()
    stop_at = start + duration
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    wall = time.perf_counter() - start
    lat = np.asarray(latencies)
    return {"requests": int(lat.size), "errors": len(errors), "error_kinds": sorted(set(errors)), "seconds": wall,
            "req_per_s": lat.size / wall if wall > 0 else math.nan, **percentiles_ms(lat),
            "latencies_ms": lat.round(4).tolist()}


async def search_closed_loop(search: Searcher, queries: Sequence[str], concurrency: int,
                             duration: float) -> dict[str, Any]:
    """Searches back to back; one loop for both sides of the ratio: only the path under ``search``
    (gRPC, or the engine in this process) differs."""
    return await timed_closed_loop(lambda _, q: search(q), queries, concurrency, duration, min(1.0, duration / 3))


async def chat_closed_loop(address: str, questions: Sequence[str], concurrency: int,
                           max_tokens: int) -> dict[str, Any]:
    """``ChatService.Ask`` for every question, ``concurrency`` at a time. TTFT is the first draft
    piece; a request that never reaches the model (abstained, refused) has its final message as its
    first output, as the gateway's SLO tracker counts it."""
    from server.client import AsyncChatClient

    queue: asyncio.Queue[str] = asyncio.Queue()
    for q in questions:
        queue.put_nowait(q)
    ttft: list[float] = []
    total: list[float] = []
    outcomes: list[str] = []
    errors: list[str] = []

    async def client() -> None:
        async with AsyncChatClient(address) as chat:
            while not queue.empty():
                q = queue.get_nowait()
                t0 = time.perf_counter()
                first = None
                try:
                    async for msg in chat.ask(q, max_tokens=max_tokens, timeout=300):
                        if first is None and (msg.text or msg.final):
                            first = time.perf_counter() - t0
                        if msg.final:
                            outcomes.append(msg.outcome)
                except grpc.aio.AioRpcError as exc:
                    errors.append(exc.code().name)
                    continue
                total.append((time.perf_counter() - t0) * 1e3)
                ttft.append((first if first is not None else total[-1] / 1e3) * 1e3)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    ttft_pct = percentiles_ms(ttft)
    return {"requests": len(total), "errors": len(errors), "error_kinds": sorted(set(errors)), "seconds": wall,
            "req_per_s": len(total) / wall if wall > 0 else math.nan, **percentiles_ms(total),
            "ttft_p50_ms": ttft_pct["p50_ms"], "ttft_p95_ms": ttft_pct["p95_ms"],
            "ttft_ms": np.round(ttft, 4).tolist(), "request_latency_ms": np.round(total, 4).tolist(),
            "outcomes": {o: outcomes.count(o) for o in sorted(set(outcomes))}}
