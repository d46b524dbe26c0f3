"""The LLM engine: a loop thread that runs scheduled steps and streams tokens to callers.

Why a thread: the forward step is one long native call that releases the GIL, so the asyncio
loop of the Serve replica (or the test) stays responsive while the model runs; requests and
aborts cross into the loop thread through a lock-protected inbox, and tokens come back through
``loop.call_soon_threadsafe``. An abort (client cancel, expired deadline) is applied at the start
of the next step, so its KV slot is free before that step runs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from collections.abc import Sequence as Seq
from dataclasses import dataclass

import torch

from server.config import LLMConfig
from server.llm.admission import TtftEstimator, refuse_if_late
from server.llm.backends import Forward, build_forward
from server.llm.errors import (
    ContextLengthError,
    EngineStalledError,
    EngineStoppedError,
    LLMRequestError,
    WaitingQueueFullError,
)
from server.llm.gguf_weights import LlamaWeights, open_reader
from server.llm.kv_cache import PagedKVCache, kv_layout
from server.llm.outputs import EngineStats, FinishReason, GenerationChunk, TokenLogprob
from server.llm.params import SamplingParams
from server.llm.registry import load_model_weights, model_gguf_path
from server.llm.request import Request
from server.llm.sampler import sample, sample_row, token_logprob
from server.llm.scheduler import Scheduler
from server.llm.step_budget import PrefillBudget
from server.llm.structured import StructuredDecoding
from server.llm.tokenizer import ChatMessage, GGUFTokenizer
from server.thread_budget import llm_threads

log = logging.getLogger(__name__)
Sink = Callable[[GenerationChunk], None]


@dataclass(slots=True)
class _Submission:
    req: Request
    sink: Sink


class LLMEngine:
    def __init__(
        self, config: LLMConfig | None = None, weights: LlamaWeights | None = None, forward: Forward | None = None
    ) -> None:
        self.config = cfg = config or LLMConfig()
        self.weights = weights or load_model_weights(cfg.gguf_path or model_gguf_path(cfg.model))
        self.tokenizer = GGUFTokenizer(open_reader(str(self.weights.path)))
        # the parsed GGUF (metadata arrays + touched mmap pages, ~220 MiB) is not needed once
        # weights and tokenizer are built: a replica should not carry it
        open_reader.cache_clear()
        mc = self.weights.config
        self.model_config = mc
        # grammar-constrained decoding for response formats; its tokenizer is built on first use
        self.structured = StructuredDecoding(self.tokenizer.to_json(), mc.vocab_size, self.tokenizer.eos_id)
        self.max_model_len = min(cfg.max_model_len, mc.context_length)
        self.num_threads = llm_threads(cfg.num_threads)
        torch.set_num_threads(self.num_threads)
        if forward is None:
            self.forward, self.backend_name = build_forward(
                cfg.backend, self.weights, self.num_threads, cfg.activation_precision, config=cfg
            )
        else:
            self.forward, self.backend_name = forward, "custom"
        device, dtype = kv_layout(self.forward)
        self.cache = PagedKVCache(
            mc.n_layers, cfg.max_num_seqs, mc.n_kv_heads, self.max_model_len, mc.head_dim, dtype=dtype, device=device,
            block_size=cfg.kv_block_size, n_blocks=self._pool_blocks(cfg), prefix_caching=cfg.prefix_cache_entries > 0,
        )
        self.prefix_cache = self.cache.prefix
        self.prefill_budget = PrefillBudget(cfg.max_num_batched_tokens, cfg.prefill_stall_factor, cfg.min_prefill_chunk)
        self.scheduler = Scheduler(
            self.cache, cfg.max_num_batched_tokens,
            speculative_tokens=cfg.speculative_tokens, speculative_max_batch=cfg.speculative_max_batch,
            prefill_budget=self.prefill_budget,
        )
        self.spec_drafted = 0  # draft tokens verified (speculative decoding)
        self.spec_accepted = 0  # of which the sampler confirmed
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._inbox: list[_Submission] = []
        self._aborts: dict[str, FinishReason] = {}
        self._sinks: dict[str, Sink] = {}
        self._seqs: dict[str, Request] = {}
        self._stop = False
        self._thread: threading.Thread | None = None
        self._ids = itertools.count()
        self.stats = EngineStats()
        self.ttft = TtftEstimator()  # admission by expected time to first token (llm.max_expected_ttft_s)
        self.steps = 0
        self.last_progress = time.monotonic()  # the loop's last turn: a step done, or an idle wait over

    def _pool_blocks(self, cfg: LLMConfig) -> int:
        """KV blocks: ``kv_cache_tokens`` when set, else a full context per sequence plus one per
        prefix-cache entry (the memory of the slot cache this replaced)."""
        tokens = cfg.kv_cache_tokens or (cfg.max_num_seqs + cfg.prefix_cache_entries) * self.max_model_len
        blocks = -(-tokens // cfg.kv_block_size)
        need = -(-self.max_model_len // cfg.kv_block_size)
        if blocks < need:
            raise ValueError(
                f"llm.kv_cache_tokens: {tokens} tokens cannot hold one sequence of max_model_len={self.max_model_len}"
            )
        return blocks

    # ---- requests -------------------------------------------------------------------------------
    def encode_prompt(self, prompt: str | Seq[int]) -> list[int]:
        if isinstance(prompt, str):
            if not prompt:
                raise LLMRequestError("prompt", "must not be empty")
            return self.tokenizer.encode(prompt)
        ids = [int(t) for t in prompt]
        if not ids:
            raise LLMRequestError("prompt_token_ids", "must not be empty")
        bad = [t for t in ids if not 0 <= t < self.model_config.vocab_size]
        if bad:
            vocab = self.model_config.vocab_size
            raise LLMRequestError("prompt_token_ids", f"ids must be in [0, {vocab}), got {bad[0]}")
        return ids

    def chat_prompt(self, messages: Seq[ChatMessage | dict]) -> str:
        if not messages:
            raise LLMRequestError("messages", "must not be empty")
        for i, m in enumerate(messages):
            role = m["role"] if isinstance(m, dict) else m.role
            if role not in ("system", "user", "assistant"):
                raise LLMRequestError(f"messages[{i}].role", f"must be system, user or assistant, got {role!r}")
        return self.tokenizer.apply_chat_template(messages)

    def check_fits(self, n_prompt: int, params: SamplingParams) -> None:
        limit = self.max_model_len
        if n_prompt >= limit:
            raise ContextLengthError("prompt", f"{n_prompt} tokens; the context holds {limit} (prompt + output)")
        if n_prompt + params.max_tokens > limit:
            raise ContextLengthError(
                "max_tokens",
                f"prompt ({n_prompt}) + max_tokens ({params.max_tokens}) exceeds the context of {limit} tokens; "
                f"ask for at most {limit - n_prompt}",
            )

    def submit(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        sink: Sink,
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> str:
        """Queue a request (thread-safe). Raises LLMRequestError / WaitingQueueFullError at once."""
        params.validate()
        self.check_fits(len(prompt_ids), params)
        if self._thread is None or self._stop or not self._thread.is_alive():
            raise EngineStoppedError("the engine loop is not running")
        rid = request_id or f"req-{next(self._ids)}"
        deadline = time.monotonic() + timeout_s if timeout_s is not None else None
        req = Request(rid, prompt_ids, params, self.tokenizer, self.model_config.vocab_size, deadline=deadline)
        if params.response_format:
            try:
                req.row_state.grammar = self.structured.matcher(params.response_format, params.json_schema)
            except ValueError as exc:
                raise LLMRequestError("response_format", str(exc)) from None
        with self._lock:
            if rid in self._seqs or any(s.req.request_id == rid for s in self._inbox):
                raise LLMRequestError("request_id", f"{rid!r} is already running")
            pending = len(self.scheduler.waiting) + len(self._inbox)
            if pending + 1 > self.config.max_waiting + self.cache.free_slots:
                raise WaitingQueueFullError(
                    f"{pending} requests waiting for {self.cache.free_slots} free slots "
                    f"(max_waiting={self.config.max_waiting})"
                )
            self._admit_by_ttft(len(prompt_ids), params)
            self._inbox.append(_Submission(req, sink))
        self._wake.set()
        return rid

    def _admit_by_ttft(self, prompt_len: int, params: SamplingParams) -> None:
        """Refuse when the expected time to first token passes the request class's limit (under the
        lock: server/llm/admission.py)."""
        refuse_if_late(self.ttft, self.config, params.admission_class, prompt_len,
                       [*self.scheduler.waiting, *(sub.req for sub in self._inbox)], list(self.scheduler.running),
                       self.cache.free_slots)

    def abort(self, request_id: str, reason: FinishReason = FinishReason.CANCELLED) -> None:
        with self._lock:
            self._aborts[request_id] = reason
        self._wake.set()

    async def generate(
        self,
        prompt: str | Seq[int],
        params: SamplingParams,
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> AsyncIterator[GenerationChunk]:
        """Stream chunks; closing the iterator (client cancel) aborts the request."""
        ids = self.encode_prompt(prompt)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[GenerationChunk] = asyncio.Queue()
        rid = self.submit(ids, params, lambda c: loop.call_soon_threadsafe(queue.put_nowait, c), request_id, timeout_s)
        done = False
        try:
            while not done:
                chunk = await queue.get()
                done = chunk.finish_reason is not None
                yield chunk
        finally:
            if not done:
                self.abort(rid)

    def generate_blocking(
        self, prompt: str | Seq[int], params: SamplingParams, timeout_s: float | None = None
    ) -> list[GenerationChunk]:
        """Run one request to completion from synchronous code (benchmarks, tests)."""
        ids = self.encode_prompt(prompt)
        out: list[GenerationChunk] = []
        finished = threading.Event()

        def sink(c: GenerationChunk) -> None:
            out.append(c)
            if c.finish_reason is not None:
                finished.set()

        self.submit(ids, params, sink, timeout_s=timeout_s)
        finished.wait()
        return out

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop

    def check_progress(self) -> None:
        """Raises ``EngineStalledError`` when the loop thread is gone, or has not come round for
        ``max_step_stall_s`` (a wedged step) while requests wait: a live thread is not a working engine."""
        if not self.is_running:
            raise EngineStoppedError("the LLM engine loop is not running")
        stalled = time.monotonic() - self.last_progress
        if stalled > self.config.max_step_stall_s:
            with self._lock:
                queued = len(self._inbox)
            if queued or self.scheduler.running or self.scheduler.waiting:
                raise EngineStalledError(f"the LLM engine has made no progress for {stalled:.0f} s "
                                         f"(limit {self.config.max_step_stall_s:.0f} s) with requests waiting")

    def counters(self) -> dict[str, int]:
        """Totals since start (read from another thread: plain int reads, no lock needed):
        speculative draft tokens verified and accepted, preemptions, prefix-cache query and hit tokens."""
        pc = self.prefix_cache
        return {"spec_draft_tokens": self.spec_drafted, "spec_accepted_tokens": self.spec_accepted,
                "preemptions": self.scheduler.preemptions,
                "prefix_cache_query_tokens": pc.queried_tokens if pc else 0,
                "prefix_cache_hit_tokens": pc.hit_tokens if pc else 0}  # fmt: skip

    def live_stats(self) -> EngineStats:
        """Current state (the per-step ``stats`` go stale once the engine idles)."""
        with self._lock:
            inbox = len(self._inbox)
        return EngineStats(
            num_running=len(self.scheduler.running),
            num_waiting=len(self.scheduler.waiting) + inbox,
            batch_tokens=self.stats.batch_tokens,
            batch_sequences=self.stats.batch_sequences,
            kv_cache_usage=self.cache.usage(),
            step_s=self.stats.step_s,
        )

    # ---- loop ---------------------------------------------------------------------------------
    def start(self) -> LLMEngine:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="llm-engine", daemon=True)
            self._thread.start()
        return self

    def shutdown(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._thread = None

    def _run(self) -> None:
        torch.set_num_threads(self.num_threads)
        while not self._stop:
            try:
                self._intake()
                if not self.scheduler.has_work():
                    self._wake.wait(timeout=0.5)
                    self._wake.clear()
                    self.last_progress = time.monotonic()
                    continue
                self.step()
            except Exception as exc:  # a failed step must not hang every caller
                log.exception("engine step failed")
                self._fail_all(exc)
            self.last_progress = time.monotonic()
        self._fail_all(EngineStoppedError("engine stopped"))

    def _intake(self) -> None:
        with self._lock:
            aborts, self._aborts = self._aborts, {}
        for sub in self._take_inbox():
            self._seqs[sub.req.request_id] = sub.req
            self._sinks[sub.req.request_id] = sub.sink
            self.scheduler.waiting.append(sub.req)
        now = time.monotonic()
        for req in list(self._seqs.values()):
            if req.deadline is not None and now >= req.deadline:
                aborts.setdefault(req.request_id, FinishReason.DEADLINE)
        for rid, reason in aborts.items():
            req = self._seqs.get(rid)
            if req is not None:
                req.finish_reason = reason
                self._finish(req, "", [], [])

    def _take_inbox(self) -> list[_Submission]:
        with self._lock:
            inbox, self._inbox = self._inbox, []
        return inbox

    def _finish(self, req: Request, text: str, tokens: list[int], ts: list[float],
                logprobs: list[TokenLogprob] | None = None) -> None:
        self.scheduler.release(req)
        self._seqs.pop(req.request_id, None)
        self._emit(self._sinks.pop(req.request_id, None), req, text, tokens, ts, logprobs)

    def _emit(self, sink: Sink | None, req: Request, text: str, tokens: list[int], ts: list[float],
              logprobs: list[TokenLogprob] | None = None) -> None:
        """Hand a chunk to its caller; a caller that went away (closed loop) must not stop the engine."""
        if sink is None:
            return
        try:
            sink(self._chunk(req, text, tokens, ts, logprobs))
        except Exception:
            log.debug("dropping chunk for %s: its receiver is gone", req.request_id)

    def _chunk(self, req: Request, text: str, tokens: list[int], ts: list[float],
               logprobs: list[TokenLogprob] | None = None) -> GenerationChunk:
        return GenerationChunk(
            logprobs=logprobs,
            request_id=req.request_id,
            token_ids=tokens,
            text=text,
            finish_reason=req.finish_reason,
            error=req.error,
            prompt_tokens=req.prompt_len,
            output_tokens=len(req.output_ids),
            arrival_ts=req.arrival_ts,
            first_scheduled_ts=req.first_scheduled_ts,
            token_ts=ts,
            stats=self.stats,
        )

    def step(self) -> None:
        """One iteration: schedule, forward, sample, stream."""
        sched = self.scheduler
        step = sched.schedule()
        if step is None:
            return
        t0 = time.time()
        for s, _ in step.prefill_chunks:
            if not s.first_scheduled_ts:
                s.first_scheduled_ts = t0
        logits = self.forward(step.batch, self.cache)
        sched.commit(step)
        n_plain = len(step.sampled)
        tokens = sample(logits[:n_plain], [s.row_state for s in step.sampled]) if step.sampled else []
        now = time.time()
        self.steps += 1
        prefilled = sum(n for _, n in step.prefill_chunks)
        self.ttft.observe(now - t0, prefilled, len(step.decodes) + len(step.verifies))
        self.prefill_budget.observe(now - t0, prefilled, len(step.decodes) + len(step.verifies))
        self.stats = EngineStats(
            num_running=len(sched.running),
            num_waiting=len(sched.waiting),
            batch_tokens=int(step.batch.token_ids.shape[0]),
            batch_sequences=len(step.decodes) + len(step.prefill_chunks) + len(step.verifies),
            kv_cache_usage=self.cache.usage(),
            step_s=now - t0,
        )
        for i, (req, tok) in enumerate(zip(step.sampled, tokens, strict=True)):
            lp = [self._logprob(logits[i], tok, req.params.top_logprobs)] if req.params.logprobs else None
            text = req.append(tok, self.tokenizer.stop_ids, self.max_model_len)
            if req.finish_reason is not None:
                self._finish(req, text, [tok], [now], lp)
            else:
                self._emit(self._sinks.get(req.request_id), req, text, [tok], [now], lp)
        row = n_plain
        for req, draft in step.verifies:
            self._verify(req, draft, logits[row : row + 1 + len(draft)], now)
            row += 1 + len(draft)

    def _verify(self, req: Request, draft: list[int], logits: torch.Tensor, now: float) -> None:
        """Keep the draft tokens the sampler confirms (server/llm/speculative.py): sample each
        position as plain decoding would, in order, and stop after the first token that differs from
        the draft (it is the sampler's own token, so it is kept too) or that ends the request."""
        state = req.row_state
        toks: list[int] = []
        text = ""
        for i in range(len(draft) + 1):
            tok = sample_row(logits[i], state)
            state.observe(tok)
            toks.append(tok)
            text += req.append(tok, self.tokenizer.stop_ids, self.max_model_len)
            if req.finish_reason is not None or i == len(draft) or tok != draft[i]:
                break
        accepted = 0
        while accepted < min(len(toks), len(draft)) and toks[accepted] == draft[accepted]:
            accepted += 1
        self.scheduler.commit_verify(req, 1 + accepted)  # the last token's K/V and the accepted drafts'
        self.spec_drafted += len(draft)
        self.spec_accepted += accepted
        if req.spec is not None:
            req.spec.control.record(len(draft), accepted)
        lp = None
        if req.params.logprobs:
            lp = [self._logprob(logits[i], t, req.params.top_logprobs) for i, t in enumerate(toks)]
        if req.finish_reason is not None:
            self._finish(req, text, toks, [now] * len(toks), lp)
        else:
            self._emit(self._sinks.get(req.request_id), req, text, toks, [now] * len(toks), lp)

    def _logprob(self, row: torch.Tensor, token: int, top: int) -> TokenLogprob:
        return token_logprob(row, token, top, lambda t: self.tokenizer.token_bytes([t], skip_special=False))

    def _fail_all(self, exc: BaseException) -> None:
        for sub in self._take_inbox():
            self._seqs[sub.req.request_id] = sub.req
            self._sinks[sub.req.request_id] = sub.sink
        for req in list(self._seqs.values()):
            req.finish_reason = FinishReason.SHUTDOWN if isinstance(exc, EngineStoppedError) else FinishReason.ERROR
            req.error = f"{type(exc).__name__}: {exc}"
            self._finish(req, "", [], [])
