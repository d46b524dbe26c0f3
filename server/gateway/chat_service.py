"""ChatService: parse (server/protocol/chat_validation.py), run the chat pipeline
(server/rag/chat.py), stream its draft and the final message. Verdict counts and per-rail latency
go to Prometheus (``stackserve_guardrail_*``). A tenant with a token budget reserves the answer's
``max_tokens`` first and is charged the prompt and completion tokens of every draft it took."""

from __future__ import annotations

import contextlib
import copy
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from server.config import Settings
from server.gateway.llm_service import endpoint_error_status
from server.gateway.request_context import access_fields, current_request_id, new_request_id
from server.gen.stackserve.v1 import chat_pb2 as pb
from server.guardrails.llm_doors import record as record_verdicts
from server.guardrails.policy import resolve
from server.llm.serving import LLMJob, Piece
from server.observability import metrics
from server.protocol import errors
from server.protocol.chat_validation import parse_ask
from server.rag.chat import AskOutcome, ChatPipeline, GenerationFailedError
from server.rag.retriever import EmptyStoreError
from server.security.shared_limits import TOKEN_BUDGET, RateLimited
from server.slo import tracker as slo

DEADLINE_MARGIN_S = 0.05


def _final(o: AskOutcome) -> pb.AskResponse:
    ms = {k: v * 1e3 for k, v in o.timings.items()}
    return pb.AskResponse(
        final=True, answer=o.answer, outcome=o.outcome, prompt_version=o.prompt_version,
        citations=[pb.Citation(chunk_id=h.chunk.id, source=h.chunk.source, section=h.chunk.section, score=h.score)
                   for h in o.citations],
        verdicts=[pb.GuardrailVerdict(rail=v.rail, action=v.action.value, reason=v.reason, score=v.score,
                                      ms=v.seconds * 1e3, shadow=v.shadow) for v in o.verdicts],
        timings=pb.Timings(embed_ms=ms.get("embed", 0), search_ms=ms.get("search", 0), guard_ms=ms.get("guard", 0),
                           prefill_ms=ms.get("prefill", 0), decode_ms=ms.get("decode", 0), total_ms=ms.get("total", 0),
                           guard_ttft_ms=ms.get("guard_ttft", 0), first_token_ms=ms.get("first_token", 0)),
    )


class ChatService:
    def __init__(self, pipeline_ready: Any, settings: Settings | None = None) -> None:
        """``pipeline_ready``: a callable returning the ChatPipeline once retrieval and the LLM are up,
        else None. ``settings``: where each request's guardrail policy is resolved (its tenant's, else
        ``guardrails.chat``); None: the pipeline's default policy."""
        self._pipeline = pipeline_ready
        self._settings = settings
        self._seq = itertools.count()

    async def Ask(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.AskResponse]:
        outcome = AskOutcome()
        started = time.perf_counter()
        budget, reserved, used = TOKEN_BUDGET.get(), 0, [0]
        try:
            pipeline: ChatPipeline | None = self._pipeline()
            if pipeline is None:
                raise errors.unavailable("retrieval or the LLM is still loading; retry shortly")
            params = parse_ask(request)
            if budget is not None:
                reserved = await budget.claim(params.max_tokens or pipeline.cfg.max_tokens)
                pipeline = _metered(pipeline, used)
            remaining = context.time_remaining()
            if remaining is not None and remaining <= DEADLINE_MARGIN_S:
                raise errors.deadline("the deadline passed before the question was read")
            timeout = None if remaining is None else remaining - DEADLINE_MARGIN_S
            rid = f"{current_request_id() or new_request_id()}.ask{next(self._seq)}"  # unique in the engine
            try:
                policy = (resolve(self._settings, "chat", access_fields().get("tenant"))
                          if self._settings is not None else None)
                # closed here when the client leaves: its engine request aborts now and its tokens are counted
                async with contextlib.aclosing(pipeline.ask(params.question, params.k, params.where,
                                                            params.max_tokens, rid, timeout, outcome, policy)) as texts:
                    async for text in texts:
                        yield pb.AskResponse(text=text)
            except EmptyStoreError as exc:
                raise errors.ServingError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
            except GenerationFailedError as exc:
                raise errors.unavailable(str(exc)) from None
            except errors.ServingError:
                raise
            except Exception as exc:
                raise endpoint_error_status(exc) from exc
        except errors.ServingError as err:
            if not isinstance(err, RateLimited):  # the tenant's own budget: not the server's failure
                slo.record_failure("chat", err.code.name, started)
            await errors.abort(context, err)
        finally:
            if budget is not None and reserved:
                budget.settle(reserved, used[0])
        record_verdicts(outcome.verdicts)
        metrics.CHAT_OUTCOMES.labels(outcome.outcome).inc()
        final = _final(outcome)
        elapsed = time.perf_counter() - started
        # an answer that was not streamed (abstained, refused, extractive) arrives whole: that is its first token
        slo.record("chat", failed=False, latency_s=elapsed, ttft_s=outcome.timings.get("first_token", elapsed))
        yield final


def _metered(pipeline: ChatPipeline, used: list[int]) -> ChatPipeline:
    """A view of the shared pipeline for one request whose engine requests (a restarted draft is
    one more) add their prompt and completion tokens to ``used[0]``."""
    generate = pipeline.generate

    async def counted(job: LLMJob, timeout_s: float | None, rid: str) -> AsyncIterator[Piece]:
        stream, prompt = generate(job, timeout_s, rid), 0
        try:
            async for piece in stream:
                prompt = max(prompt, piece.prompt_tokens)
                used[0] += len(piece.token_ids)
                yield piece
        finally:
            used[0] += prompt
            await stream.aclose()  # as the pipeline closes it: the engine aborts the request

    view = copy.copy(pipeline)
    view.generate = counted
    return view
