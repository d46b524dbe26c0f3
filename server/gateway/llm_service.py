"""LLMService: the servicer methods mirror the proto's RPC names.

Per request: validate every field in the gateway (llm_validation.py), then stream from the
endpoint with the call's remaining deadline as the engine's timeout. Leaving the stream early
— the client cancels, the deadline passes, an error — closes the endpoint stream, which cancels
the replica's generator, which aborts the request in the engine and frees its KV-cache slot.

Metrics follow vLLM's names (docs/design/llm_serving.md, "Metrics"): TTFT and end-to-end measured here from the call's
arrival; inter-token and queue times from the engine's timestamps; running/waiting/KV-cache
gauges from every piece and from a periodic ``stats()`` read, so they fall back to zero when
traffic stops.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from server.config import Settings
from server.gateway.failures import failure_status
from server.gateway.llm_endpoint import LLMEndpoint
from server.gateway.ray_errors import ReplicaBusyError, ReplicaLostError, ReplicaTimeoutError
from server.gateway.request_context import access_fields, current_request_id, new_request_id
from server.gen.stackserve.v1 import llm_pb2 as pb
from server.guardrails.llm_doors import LLMGuard
from server.llm.errors import EngineStoppedError, LLMRequestError, WaitingQueueFullError
from server.llm.outputs import FinishReason, TokenLogprob
from server.llm.serving import EngineInfo, LLMJob, Piece
from server.observability import metrics
from server.observability.logs import payload_hash, payload_hasher
from server.protocol import errors
from server.protocol.errors import ServingError
from server.protocol.llm_validation import parse_chat, parse_generate
from server.security.shared_limits import TOKEN_BUDGET
from server.slo import tracker as slo

log = logging.getLogger("stackserve.gateway")
# The engine's timeout is the call's remaining time less this margin, so the engine's own
# deadline usually ends the request first (a clear DEADLINE_EXCEEDED, slot freed in the engine
# without waiting for the cancellation to cross Ray); a call that left within the margin of its
# deadline is counted as "deadline", not "cancelled".
DEADLINE_MARGIN_S = 0.05


class _Series:
    """Metric children for one model, resolved once."""

    def __init__(self, model: str):
        self.model = model
        self.ttft = metrics.LLM_TTFT.labels(model)
        self.itl = metrics.LLM_ITL.labels(model)
        self.e2e = metrics.LLM_E2E.labels(model)
        self.queue = metrics.LLM_QUEUE.labels(model)
        self.prompt_tokens = metrics.LLM_PROMPT_TOKENS.labels(model)
        self.generation_tokens = metrics.LLM_GENERATION_TOKENS.labels(model)
        self.running = metrics.LLM_RUNNING.labels(model)
        self.waiting = metrics.LLM_WAITING.labels(model)
        self.kv_usage = metrics.LLM_KV_USAGE.labels(model)
        self.batch = metrics.LLM_BATCH_SIZE.labels(model)
        self.engine_counters = {k: c.labels(model) for k, c in metrics.LLM_ENGINE_COUNTERS.items()}
        self.engine_seen: dict[str, int] = {}  # the engine's totals already added

    def add_engine_totals(self, totals: dict[str, int]) -> None:
        """Add what the engine counted since the last read; a total that went down means the
        replica restarted (its count started over): all of it is new."""
        for key, counter in self.engine_counters.items():
            now = int(totals.get(key, 0))
            seen = self.engine_seen.get(key, 0)
            delta = now - seen if now >= seen else now
            if delta:
                counter.inc(delta)
            self.engine_seen[key] = now

    def requests(self, rpc: str, outcome: str) -> Any:
        return metrics.LLM_REQUESTS.labels(self.model, rpc, outcome)


@dataclass(slots=True)
class _Progress:
    """One call's state as its pieces arrive."""

    started: float  # perf_counter at arrival
    wall: float  # time.time() at arrival (token offsets are wall-clock differences)
    pieces: int = 0
    tokens: int = 0
    prompt_tokens: int = 0
    ttft: float | None = None
    queue: float | None = None
    e2e: float | None = None
    last_ts: float | None = None
    finish: FinishReason | None = None
    gaps: list[float] = field(default_factory=list)  # between streamed tokens: the request's own ITL p95
    text_hash: Any = field(default_factory=payload_hasher)  # the response, for logs


def _outcome_error(piece: Piece) -> ServingError:
    """A finish the client did not ask for: the engine's deadline, an abort, a failed step."""
    reason = piece.finish_reason
    if reason is FinishReason.DEADLINE:
        return errors.deadline("the deadline passed during generation; the request was aborted")
    if reason is FinishReason.CANCELLED:
        return errors.unavailable("the request was cancelled in the engine (replica shutting down?)")
    if reason is FinishReason.SHUTDOWN:
        return failure_status("the LLM engine stopped; retry on another replica", piece.error or "shutdown")
    return failure_status("generation failed", piece.error or str(reason), grpc.StatusCode.INTERNAL)


def endpoint_error_status(exc: BaseException) -> ServingError:
    """By type: the endpoints hand over the engine's own exceptions and ours for Ray's refusals."""
    if isinstance(exc, LLMRequestError):
        return errors.invalid(exc.field, exc.reason)
    if isinstance(exc, WaitingQueueFullError):
        return errors.exhausted(f"LLM engine queue is full: {exc}")
    if isinstance(exc, ReplicaBusyError):
        return errors.exhausted("the LLM replicas' queues are full; retry later")
    if isinstance(exc, ReplicaTimeoutError):
        return failure_status("the LLM replica did not answer in time", exc, grpc.StatusCode.DEADLINE_EXCEEDED)
    if isinstance(exc, (EngineStoppedError, ReplicaLostError)):
        return failure_status("the LLM replica serving this request is not running; retry", exc)
    return failure_status("the LLM endpoint failed", exc)


def _prompt_hash(job: LLMJob) -> str:
    if job.kind == "chat":
        return payload_hash(json.dumps(job.messages))
    if job.prompt is not None:
        return payload_hash(job.prompt)
    return payload_hash(",".join(map(str, job.prompt_token_ids or ())))


class LLMService:
    def __init__(self, settings: Settings, endpoint: LLMEndpoint):
        self.settings = settings
        self.endpoint = endpoint
        self.info: EngineInfo | None = None
        self._series: _Series | None = None
        self._seq = itertools.count()
        self._gauges_at = 0.0  # monotonic time of the last gauge update from a piece
        # the guardrails of the LLM doors (set by the gateway; None: no policy applies)
        self.guard: LLMGuard | None = None

    # ----- lifecycle -------------------------------------------------------
    def load_info(self, info: EngineInfo) -> None:
        self.info = info
        self._series = _Series(self.info.model)

    @property
    def ready(self) -> bool:
        return self.info is not None

    async def close(self) -> None:
        close = getattr(self.endpoint, "close", None)
        if close is not None:
            await close()

    async def run_stats_loop(self) -> None:
        """Refresh the running/waiting/KV gauges from the engine, so they are right when idle too."""
        interval = self.settings.llm.stats_interval_s
        while True:
            await asyncio.sleep(interval)
            series = self._series
            if series is None:
                continue
            issued = time.monotonic()
            try:
                running, waiting, usage = await asyncio.wait_for(self.endpoint.stats(), max(5.0, 5 * interval))
            except Exception as exc:  # a slow or restarting replica: keep the last values
                log.debug("llm stats read failed: %s", exc)
                continue
            if issued >= self._gauges_at:  # older than a piece already applied: stale
                self._set_gauges(series, running, waiting, usage, issued)
            try:
                series.add_engine_totals(await asyncio.wait_for(self.endpoint.counters(), max(5.0, 5 * interval)))
            except Exception as exc:
                log.debug("llm counters read failed: %s", exc)

    def _set_gauges(self, series: _Series, running: int, waiting: int, usage: float, at: float) -> None:
        self._gauges_at = at
        series.running.set(running)
        series.waiting.set(waiting)
        series.kv_usage.set(usage)

    # ----- request path ----------------------------------------------------
    def _parse(self, parse: Callable[[Any, EngineInfo], LLMJob], request: Any) -> LLMJob:
        if self.info is None:
            raise errors.unavailable("the LLM is still loading; retry shortly")
        return parse(request, self.info)

    def job(self, parse: Callable[[Any, EngineInfo], LLMJob], request: Any) -> LLMJob:
        """A validated job from a request message (the OpenAI front end builds the same messages)."""
        return self._parse(parse, request)

    def stream(self, job: LLMJob, rpc: str, context: Any) -> AsyncIterator[tuple[Piece, _Progress]]:
        """The engine stream of ``job`` with this service's metrics, SLO records and access-log
        fields; ``context`` needs only ``time_remaining()``. Raises ServingError."""
        return self._stream(job, rpc, context)

    def _timeout(self, context: grpc.aio.ServicerContext) -> float:
        """Seconds the engine may spend; DEADLINE_EXCEEDED at once when none are left."""
        remaining = context.time_remaining()
        if remaining is None:
            return self.settings.llm.default_timeout_s
        if remaining <= DEADLINE_MARGIN_S:
            raise errors.deadline("the deadline passed before generation started")
        return remaining - DEADLINE_MARGIN_S

    def _observe(self, series: _Series, p: _Progress, piece: Piece) -> None:
        if piece.token_ids:
            if p.ttft is None:
                p.ttft = time.perf_counter() - p.started
                series.ttft.observe(p.ttft)
            last = p.last_ts
            for ts in piece.token_ts:
                if last is not None:
                    gap = max(0.0, ts - last)
                    series.itl.observe(gap)
                    p.gaps.append(gap)
                last = ts
            p.last_ts = last
            series.generation_tokens.inc(len(piece.token_ids))
        if not p.prompt_tokens and piece.prompt_tokens:
            p.prompt_tokens = piece.prompt_tokens
            series.prompt_tokens.inc(piece.prompt_tokens)
        if p.queue is None and piece.first_scheduled_ts:
            p.queue = max(0.0, piece.first_scheduled_ts - piece.arrival_ts)
            series.queue.observe(p.queue)
        for n in piece.step_batch_sizes:
            series.batch.observe(n)
        self._set_gauges(series, piece.running, piece.waiting, piece.kv_cache_usage, time.monotonic())

    async def _stream(
        self, job: LLMJob, rpc: str, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tuple[Piece, _Progress]]:
        """Pieces from the endpoint with metrics and the access-log fields recorded; raises ServingError.

        ``_Progress.tokens`` already counts the piece it is yielded with. A tenant with a token budget
        reserves ``max_tokens`` before anything runs (RESOURCE_EXHAUSTED when its budget cannot) and
        settles with the prompt and completion tokens used, however the stream ends.
        """
        assert self.info is not None and self._series is not None
        series = self._series
        p = _Progress(time.perf_counter(), time.time())
        fields = access_fields()
        fields.update(model=series.model, prompt_hash=_prompt_hash(job))
        budget = TOKEN_BUDGET.get()
        reserved = await budget.claim(job.params.max_tokens) if budget is not None else 0
        try:
            stream = (await self._source(job, context, fields)).__aiter__()
        except BaseException:
            if budget is not None:
                budget.settle(reserved, 0)
            raise
        outcome: str | None = None  # the requests_total label; "" = not counted (rejected as invalid)
        try:
            while True:
                try:
                    piece = await stream.__anext__()
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    err = endpoint_error_status(exc)
                    outcome = {grpc.StatusCode.RESOURCE_EXHAUSTED: "rejected",
                               grpc.StatusCode.INVALID_ARGUMENT: ""}.get(err.code, "error")
                    raise err from None
                self._observe(series, p, piece)
                if piece.text:
                    p.text_hash.update(piece.text.encode())
                p.pieces += 1
                p.tokens += len(piece.token_ids)
                if piece.finish_reason is not None:
                    outcome = p.finish = piece.finish_reason
                    p.e2e = time.perf_counter() - p.started
                    if not p.finish.asked_for:
                        aborted = p.finish in (FinishReason.DEADLINE, FinishReason.CANCELLED)
                        outcome = p.finish.value if aborted else "error"
                        raise _outcome_error(piece)
                yield piece, p
            if p.finish is None:
                outcome = "error"
                raise errors.unavailable("the LLM stream ended without a finish reason")
        finally:
            await stream.aclose()  # early exit: cancels the replica's generator → the engine aborts
            if outcome is None:  # left without a finish: the client cancelled, or its deadline passed
                remaining = context.time_remaining()
                outcome = "deadline" if remaining is not None and remaining <= 2 * DEADLINE_MARGIN_S else "cancelled"
            if outcome:
                if p.pieces:  # it ran in the engine (not rejected, not cancelled before its first piece)
                    if p.e2e is None:
                        p.e2e = time.perf_counter() - p.started
                    series.e2e.observe(p.e2e)
                series.requests(rpc, outcome).inc()
                if outcome != "cancelled":  # the client walked away: not a request the server failed
                    slo.record("llm", failed=outcome in ("rejected", "error", "deadline"),
                               latency_s=p.e2e if p.e2e is not None else time.perf_counter() - p.started,
                               ttft_s=p.ttft, itl_s=slo.p95(p.gaps), output_tokens=p.tokens)
            fields.update(
                prompt_tokens=p.prompt_tokens,
                completion_tokens=p.tokens,
                finish_reason=p.finish or outcome,
                ttft_ms=None if p.ttft is None else round(p.ttft * 1e3, 3),
                response_hash=p.text_hash.hexdigest(),  # same hash as payload_hash(full text)
            )
            if budget is not None:
                budget.settle(reserved, p.prompt_tokens + p.tokens)

    async def _source(self, job: LLMJob, context: grpc.aio.ServicerContext, fields: dict) -> AsyncIterator[Piece]:
        """The engine's pieces for ``job``, through the guardrails when a policy applies."""
        assert self._series is not None
        rid = current_request_id() or new_request_id()
        engine_id = f"{rid}.{next(self._seq)}"  # unique in the engine even if a client reuses x-request-id
        policy = self.guard.policy(fields.get("tenant"), self._series.model) if self.guard is not None else None
        if policy is None:
            return self.endpoint.generate(job, self._timeout(context), engine_id)
        # the prompt judged before the engine sees it, the output released in judged windows
        assert self.guard is not None
        job, refusal = await self.guard.admit(job, policy)
        if refusal is not None:
            return _only(refusal)
        return self.guard.output(self.endpoint.generate(job, self._timeout(context), engine_id), policy)

    async def _responses(
        self, job: LLMJob, rpc: str, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateResponse]:
        first = True
        async for piece, p in self._stream(job, rpc, context):
            if not piece.token_ids and piece.finish_reason is None:
                continue
            timing = pb.Timing(token_offsets_s=[ts - p.wall for ts in piece.token_ts])
            msg = pb.GenerateResponse(
                text=piece.text,
                token_ids=piece.token_ids,
                index=p.tokens - len(piece.token_ids),
                finish_reason=piece.finish_reason or "",
                logprobs=logprob_protos(piece.logprobs),
            )
            if first:
                first = False
                msg.model = self.info.model if self.info else ""
                timing.ttft_s = p.ttft or 0.0
                timing.queue_s = p.queue or 0.0
            if piece.finish_reason is not None:
                timing.e2e_s = p.e2e or 0.0
                msg.usage.prompt_tokens = piece.prompt_tokens
                msg.usage.completion_tokens = piece.output_tokens
                msg.usage.total_tokens = piece.prompt_tokens + piece.output_tokens
            msg.timing.CopyFrom(timing)
            yield msg

    async def _run(
        self, job_of: Callable[[], LLMJob], rpc: str, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateResponse]:
        try:
            job = job_of()
            async for msg in self._responses(job, rpc, context):
                yield msg
        except ServingError as err:
            await errors.abort(context, err)

    # ----- RPCs ------------------------------------------------------------
    async def Generate(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.GenerateResponse]:
        async for msg in self._run(lambda: self._parse(parse_generate, request), "Generate", context):
            yield msg

    async def Chat(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.GenerateResponse]:
        async for msg in self._run(lambda: self._parse(parse_chat, request), "Chat", context):
            yield msg

    async def ListModels(self, request: Any, context: grpc.aio.ServicerContext) -> pb.ListLLMModelsResponse:
        info = self.info
        if info is None:
            await errors.abort(context, errors.unavailable("the LLM is still loading; retry shortly"))
        return pb.ListLLMModelsResponse(models=[pb.LLMModel(
            name=info.model, backend=info.backend, max_model_len=info.max_model_len, vocab_size=info.vocab_size,
            max_num_seqs=info.max_num_seqs)])  # fmt: skip

    async def Complete(self, request: Any, context: grpc.aio.ServicerContext) -> pb.CompleteResponse:
        out = pb.CompleteResponse()
        texts: list[str] = []
        try:
            job = self._parse(parse_generate, request)
            async for piece, p in self._stream(job, "Complete", context):
                texts.append(piece.text)
                out.token_ids.extend(piece.token_ids)
                out.logprobs.extend(logprob_protos(piece.logprobs))
                if piece.finish_reason is not None:
                    out.finish_reason = piece.finish_reason
                    out.usage.prompt_tokens = piece.prompt_tokens
                    out.usage.completion_tokens = piece.output_tokens
                    out.usage.total_tokens = piece.prompt_tokens + piece.output_tokens
                    out.timing.ttft_s = p.ttft or 0.0
                    out.timing.queue_s = p.queue or 0.0
                    out.timing.e2e_s = p.e2e or 0.0
        except ServingError as err:
            await errors.abort(context, err)
        out.text = "".join(texts)
        out.model = self.info.model if self.info else ""
        return out


async def _only(piece: Piece) -> AsyncIterator[Piece]:
    yield piece


def logprob_protos(logprobs: list[TokenLogprob] | None) -> list[pb.TokenLogprob]:
    if not logprobs:
        return []
    return [pb.TokenLogprob(token_id=lp.token_id, logprob=lp.logprob, token=lp.token,
                            top_logprobs=[pb.TopLogprob(token_id=i, logprob=v, token=b) for i, v, b in lp.top])
            for lp in logprobs]  # fmt: skip
