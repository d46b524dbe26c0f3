"""What crosses into the LLM replica and what comes back, and the adapter that streams it.

``LLMJob`` is one checked request (pickled by Ray into the replica); ``Piece`` is what the replica
yields back. ``stream_job`` runs next to the engine (inside the replica, or in the gateway's own
process without Ray): it submits the job and turns the engine's per-token chunks into pieces —
everything queued since the last yield, merged — so a consumer that falls behind costs fewer
crossings instead of more. Closing the stream early (client cancel, deadline) aborts the request
in the engine, which frees its KV-cache slot within one step. They live with the engine, as vLLM
keeps its engine-core request/output types in its engine package, so a Ray replica imports
nothing of the gateway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.llm.errors import ContextLengthError, EngineStalledError, LLMRequestError
from server.llm.outputs import FinishReason, TokenLogprob
from server.llm.params import SamplingParams
from server.observability import tracing

if TYPE_CHECKING:
    from server.llm.engine import LLMEngine
    from server.llm.outputs import GenerationChunk


@dataclass(frozen=True, slots=True)
class LLMJob:
    """One checked request, as it crosses into the LLMEngine replica (pickled by Ray)."""

    kind: str  # "generate" | "chat"
    params: SamplingParams
    max_tokens_set: bool  # False: the replica caps the default to what the context has left
    prompt: str | None = None
    prompt_token_ids: tuple[int, ...] | None = None
    messages: tuple[tuple[str, str], ...] | None = None  # (role, content)
    # W3C trace context of the caller's span (server/observability/tracing.py); None: not traced
    trace_context: tuple[tuple[str, str], ...] | None = None
    model: str = ""  # the served model it is for (the gateway's router sets it; "" = the only one)

    @property
    def prompt_field(self) -> str:
        """The request field a too-long prompt is blamed on."""
        if self.kind == "chat":
            return "messages"
        return "prompt" if self.prompt is not None else "prompt_token_ids"



@dataclass(slots=True)
class Piece:
    """The engine's chunks for one request since the previous piece, merged (the wire unit)."""

    text: str
    token_ids: list[int]
    token_ts: list[float]  # wall clock (time.time()) of each token
    finish_reason: FinishReason | None  # set on the last piece
    prompt_tokens: int
    output_tokens: int  # cumulative
    arrival_ts: float  # when the engine accepted the request
    first_scheduled_ts: float  # when its prefill started; 0 if never scheduled
    step_batch_sizes: list[int]  # sequences per engine step, each step reported once per engine
    running: int  # engine load when this piece left it (live, not as of the step)
    waiting: int
    kv_cache_usage: float
    error: str = ""  # with FinishReason.ERROR / SHUTDOWN: what failed
    logprobs: list[TokenLogprob] | None = None  # one per token_ids entry, when the request asked
    # The engine refused the request before running it (prompt too long, queue full, stopped): sent as
    # the stream's only piece rather than raised, so a Ray replica does not log a traceback for a
    # routine refusal; the gateway's endpoint raises it (RayLLMEndpoint.generate).
    refusal: Exception | None = None

    @classmethod
    def refused(cls, exc: Exception) -> Piece:
        return cls("", [], [], None, 0, 0, 0.0, 0.0, [], 0, 0, 0.0, refusal=exc)


class StepTracker:
    """Reports each engine step's batch size once, however many requests' chunks carry it.

    Every chunk of one step shares the engine's ``EngineStats`` object; a step is new when that
    object has not been seen. Strong references are kept, so an id is not reused while remembered.
    """

    def __init__(self, keep: int = 1024) -> None:
        self.keep = keep
        self._seen: OrderedDict[int, object] = OrderedDict()

    def first_time(self, stats: object) -> bool:
        key = id(stats)
        if key in self._seen:
            return False
        self._seen[key] = stats
        if len(self._seen) > self.keep:
            self._seen.popitem(last=False)
        return True


def default_model_name(engine: LLMEngine) -> str:
    """``SmolLM2-135M-Instruct.Q4_1.gguf`` → ``SmolLM2-135M-Instruct``."""
    return Path(engine.weights.path).name.split(".")[0]


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What a caller checks requests against: the served model, its limits and its vocabulary."""

    model: str
    backend: str  # the compute path: cpu-int4 | torch-fp32 | triton | tensorrt
    max_model_len: int
    vocab_size: int
    max_token_bytes: int  # longest token's text: bounds a stop string's hold-back
    default_max_tokens: int
    max_num_seqs: int = 0
    max_waiting: int = 0


def engine_info(engine: LLMEngine, model_name: str = "") -> EngineInfo:
    tok = engine.tokenizer
    longest = max(len(tok.token_bytes([i], skip_special=False)) for i in range(tok.vocab_size))
    cfg = engine.config
    return EngineInfo(
        model=model_name or default_model_name(engine),
        backend=engine.backend_name,
        max_model_len=engine.max_model_len,
        vocab_size=engine.model_config.vocab_size,
        max_token_bytes=longest,
        default_max_tokens=cfg.default_max_tokens,
        max_num_seqs=cfg.max_num_seqs,
        max_waiting=cfg.max_waiting,
    )


def engine_load(engine: LLMEngine) -> tuple[int, int, float]:
    """(running, waiting, KV-cache usage) now."""
    st = engine.live_stats()
    return st.num_running, st.num_waiting, st.kv_cache_usage


def _merge(chunks: list[GenerationChunk], engine: LLMEngine, steps: StepTracker) -> Piece:
    last = chunks[-1]
    running, waiting, usage = engine_load(engine)
    return Piece(
        text="".join(c.text for c in chunks),
        token_ids=[t for c in chunks for t in c.token_ids],
        token_ts=[t for c in chunks for t in c.token_ts],
        finish_reason=last.finish_reason,
        prompt_tokens=last.prompt_tokens,
        output_tokens=last.output_tokens,
        arrival_ts=last.arrival_ts,
        first_scheduled_ts=last.first_scheduled_ts,
        step_batch_sizes=[
            c.stats.batch_sequences for c in chunks if c.stats is not None and c.token_ids and steps.first_time(c.stats)
        ],
        running=running,
        waiting=waiting,
        kv_cache_usage=usage,
        error=last.error,
        logprobs=[lp for c in chunks for lp in (c.logprobs or ())] if any(c.logprobs for c in chunks) else None,
    )


def tokenize(engine: LLMEngine, job: LLMJob) -> list[int]:
    """The token ids the engine runs for ``job``'s prompt (chat template applied), unchecked for fit:
    what ``/tokenize`` answers and what a generation starts from."""
    if job.kind == "chat":
        assert job.messages is not None
        prompt: str | list[int] = engine.chat_prompt([{"role": r, "content": c} for r, c in job.messages])
    elif job.prompt is not None:
        prompt = job.prompt
    else:
        assert job.prompt_token_ids is not None
        prompt = list(job.prompt_token_ids)
    return engine.encode_prompt(prompt)


def detokenize(engine: LLMEngine, ids: list[int]) -> str:
    """The text of ``ids`` with special tokens written out (the inverse of ``tokenize``'s encode);
    an id outside the vocabulary is refused, naming its index."""
    vocab = engine.model_config.vocab_size
    for i, t in enumerate(ids):
        if not 0 <= t < vocab:
            raise LLMRequestError(f"tokens[{i}]", f"{t} is outside the vocabulary [0, {vocab})")
    return engine.tokenizer.decode(ids, skip_special=False)


def _prepare(engine: LLMEngine, job: LLMJob) -> tuple[list[int], Any]:
    """Template and tokenize; cap an unset max_tokens to the room left; check the fit."""
    try:
        ids = tokenize(engine, job)
        params = job.params
        room = engine.max_model_len - len(ids)
        if not job.max_tokens_set and 0 < room < params.max_tokens:
            params = dataclasses.replace(params, max_tokens=room)
        engine.check_fits(len(ids), params)
    except ContextLengthError as exc:  # name the request's field, not the engine's
        raise ContextLengthError(
            job.prompt_field if exc.field == "prompt" else f"sampling.{exc.field}", exc.reason
        ) from None
    return ids, params


#: seconds past a request's deadline before its stream gives up on the engine (see ``stream_job``)
STALL_SLACK_S = 5.0


async def stream_job(
    engine: LLMEngine, job: LLMJob, timeout_s: float | None, request_id: str | None, steps: StepTracker
) -> AsyncIterator[Piece]:
    """Run one job on ``engine``; yields merged pieces until the one with a finish_reason.

    Raises LLMRequestError (the prompt does not fit), WaitingQueueFullError, EngineStoppedError before
    the first piece. Closing the generator early aborts the request in the engine.
    """
    ids, params = _prepare(engine, job)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[GenerationChunk] = asyncio.Queue()
    rid = engine.submit(
        ids, params, lambda c: loop.call_soon_threadsafe(queue.put_nowait, c), request_id, timeout_s
    )
    done = False
    # the engine ends a request at its deadline itself; this bound is for an engine that cannot (a
    # wedged step): the caller gets EngineStalledError (UNAVAILABLE) instead of waiting forever
    bound = loop.time() + (timeout_s if timeout_s is not None else engine.config.default_timeout_s) + STALL_SLACK_S
    try:
        while not done:
            try:
                first = await asyncio.wait_for(queue.get(), max(0.0, bound - loop.time()))
            except TimeoutError:
                raise EngineStalledError("the LLM engine produced nothing before the request's deadline") from None
            chunks = [first]
            while not queue.empty():
                chunks.append(queue.get_nowait())
            piece = _merge(chunks, engine, steps)
            done = piece.finish_reason is not None
            yield piece
    finally:
        if not done:
            engine.abort(rid)



class AsyncEngine:
    """An engine behind the three async calls its callers make (``info``, ``stats``, ``generate``):
    what the Ray replica serves and what the gateway uses in-process without Ray."""

    def __init__(self, engine: LLMEngine, model_name: str = "") -> None:
        self.engine = engine
        self.steps = StepTracker()
        self._info = engine_info(engine, model_name)

    async def info(self) -> EngineInfo:
        """Model name, backend, context length, vocabulary: what callers validate requests against."""
        return self._info

    async def stats(self) -> tuple[int, int, float]:
        """(running, waiting, KV-cache usage) now."""
        return engine_load(self.engine)

    async def counters(self) -> dict[str, int]:
        """The engine's totals since start (``LLMEngine.counters``)."""
        return self.engine.counters()

    async def health(self) -> None:
        """Raises unless the engine makes progress (``LLMEngine.check_progress``)."""
        self.engine.check_progress()

    async def tokenize(self, job: LLMJob) -> list[int]:
        """The prompt's token ids as a generation would run them (``/tokenize``), off the event loop:
        a prompt of up to a million characters takes the tokenizer a while."""
        return await asyncio.to_thread(tokenize, self.engine, job)

    async def detokenize(self, ids: list[int]) -> str:
        """The text of token ids (``/detokenize``), off the event loop."""
        return await asyncio.to_thread(detokenize, self.engine, ids)

    async def generate(self, job: LLMJob, timeout_s: float | None, request_id: str) -> AsyncIterator[Piece]:
        """Stream merged pieces of one request; closing the stream aborts it in the engine."""
        if not tracing.enabled() or job.trace_context is None:
            async for piece in stream_job(self.engine, job, timeout_s, request_id, self.steps):
                yield piece
            return
        started = time.time()
        arrival = scheduled = 0.0
        token_ts: list[float] = []
        prefill: list[int] = []
        decode: list[int] = []
        prompt_tokens, finish = 0, "aborted"
        try:
            async for piece in stream_job(self.engine, job, timeout_s, request_id, self.steps):
                arrival, scheduled = piece.arrival_ts or arrival, piece.first_scheduled_ts or scheduled
                (decode if token_ts else prefill).extend(piece.step_batch_sizes)
                token_ts += piece.token_ts
                prompt_tokens = piece.prompt_tokens or prompt_tokens
                if piece.finish_reason is not None:
                    finish = str(piece.finish_reason)
                yield piece
        finally:
            tracing.record_generation(dict(job.trace_context), request_id, started_wall=started,
                                      arrival_ts=arrival or started, scheduled_ts=scheduled, token_ts=token_ts,
                                      ended_wall=time.time(), prefill_batches=prefill, decode_batches=decode,
                                      prompt_tokens=prompt_tokens, finish_reason=finish)

    async def close(self) -> None:
        await asyncio.to_thread(self.engine.shutdown)
