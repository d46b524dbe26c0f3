"""What the engine hands its callers, per request and per step: the types that cross a process
boundary (into a Ray replica's stream and back to the gateway), kept with the engine that makes
them, as vLLM v1 keeps its engine-core outputs and ``FinishReason`` in its engine package."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FinishReason(enum.StrEnum):
    """Why a request stopped. A ``StrEnum``: it pickles across Ray and its value is the wire string."""

    STOP = "stop"  # EOS or a stop string
    LENGTH = "length"  # max_tokens or the context limit
    CANCELLED = "cancelled"  # the caller went away (client cancel) or aborted it
    DEADLINE = "deadline"  # the request's deadline passed in the engine
    SHUTDOWN = "shutdown"  # the engine stopped while the request ran (retry elsewhere)
    ERROR = "error"  # a step failed; ``error`` on the chunk says how
    CONTENT_FILTER = "content_filter"  # the guardrails refused the prompt or stopped the output (gateway)

    @property
    def asked_for(self) -> bool:
        """A finish the client asked for (its stop/length limits, the operator's content policy)
        rather than one that failed it."""
        return self in (FinishReason.STOP, FinishReason.LENGTH, FinishReason.CONTENT_FILTER)


@dataclass(slots=True)
class EngineStats:
    """Engine state shipped with every chunk, so the gateway's /metrics sees the replica."""

    num_running: int = 0
    num_waiting: int = 0
    batch_tokens: int = 0
    batch_sequences: int = 0
    kv_cache_usage: float = 0.0
    step_s: float = 0.0


@dataclass(slots=True)
class TokenLogprob:
    """A sampled token's log-probability under the model's raw logits, with the likeliest tokens'
    (``top``: (id, logprob, bytes), most likely first). Bytes, not text: a token may hold part of
    a UTF-8 character, and OpenAI's API returns the bytes too."""

    token_id: int
    logprob: float
    token: bytes
    top: list[tuple[int, float, bytes]]


@dataclass(slots=True)
class GenerationChunk:
    """What one engine step produced for one request (usually one token)."""

    request_id: str
    token_ids: list[int]
    text: str
    finish_reason: FinishReason | None
    prompt_tokens: int
    output_tokens: int  # cumulative
    arrival_ts: float  # wall clock (time.time()) when the engine accepted the request
    first_scheduled_ts: float  # wall clock when its prefill started (queue time = this - arrival)
    token_ts: list[float]  # wall clock of each token in token_ids
    stats: EngineStats | None = None
    error: str = ""  # with FinishReason.ERROR / SHUTDOWN: what failed
    logprobs: list[TokenLogprob] | None = None  # one per token_ids entry, when the request asked
