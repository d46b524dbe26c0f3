"""One request's life inside the engine: tokens, cache slot, text, stop conditions, timings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from server.llm.outputs import FinishReason
from server.llm.params import SamplingParams
from server.llm.sampler import RowState
from server.llm.speculative import Speculator
from server.llm.tokenizer import GGUFTokenizer, IncrementalDecoder


class StopMatcher:
    """Finds stop strings in streamed text and holds back what could still become one."""

    __slots__ = ("_max", "_stops")

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = stops
        self._max = max((len(s) for s in stops), default=0)

    def find(self, text: str, start: int) -> int:
        """Index of the earliest stop string ending after ``start`` (-1 if none)."""
        best = -1
        lo = max(0, start - self._max + 1)
        for s in self._stops:
            i = text.find(s, lo)
            if i != -1 and (best == -1 or i < best):
                best = i
        return best

    def holdback(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that is a proper prefix of a stop string."""
        for n in range(min(self._max - 1, len(text)), 0, -1):
            tail = text[-n:]
            if any(s.startswith(tail) for s in self._stops):
                return n
        return 0


@dataclass(slots=True, eq=False)
class Request:
    """A request the engine runs: the scheduler's unit (vLLM calls it a request, too)."""

    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    tokenizer: GGUFTokenizer
    vocab_size: int
    deadline: float | None = None  # time.monotonic()
    arrival_ts: float = field(default_factory=time.time)
    first_scheduled_ts: float = 0.0
    output_ids: list[int] = field(default_factory=list)
    slot: int = -1
    n_cached: int = 0  # tokens whose K/V are in the cache
    finish_reason: FinishReason | None = None
    error: str = ""
    text: str = ""
    sent: int = 0
    aborted: str | None = None
    preemptions: int = 0
    spec: Speculator | None = None  # n-gram drafting state, when speculative decoding is on
    # tokens to prefill before the next token is sampled: the prompt, or after a preemption the
    # prompt and every output token so far (their K/V were given up with the slot)
    prefill_len: int = field(init=False)
    row_state: RowState = field(init=False)
    _decoder: IncrementalDecoder = field(init=False)
    _stops: StopMatcher = field(init=False)

    def __post_init__(self) -> None:
        self.row_state = RowState(self.params, self.prompt_ids, self.vocab_size)
        self._decoder = IncrementalDecoder(self.tokenizer)
        self._stops = StopMatcher(self.params.stop)
        self.prefill_len = len(self.prompt_ids)

    @property
    def prompt_len(self) -> int:
        return len(self.prompt_ids)

    @property
    def in_prefill(self) -> bool:
        return self.n_cached < self.prefill_len

    @property
    def priority(self) -> int:
        return self.params.priority

    def context_ids(self) -> list[int]:
        """The tokens whose K/V the slot holds or will hold, in order: prompt, then output."""
        return self.prompt_ids + self.output_ids if self.output_ids else self.prompt_ids

    def prefill_ids(self, start: int, n: int) -> list[int]:
        return self.context_ids()[start : start + n]

    def preempted(self) -> None:
        """Its slot was taken for a more urgent request: resume by prefilling prompt and output so
        far (the last output token included: its K/V were never written), then sample as usual.
        The sampling state (RNG, penalties, grammar) is kept, so the answer is the one it would
        have given without the interruption."""
        self.preemptions += 1
        self.n_cached = 0
        self.prefill_len = self.total_len

    @property
    def total_len(self) -> int:
        return self.prompt_len + len(self.output_ids)

    def append(self, token: int, end_ids: frozenset[int], max_len: int) -> str:
        """Record a sampled token; returns the text now safe to stream (may be empty). ``end_ids``:
        the tokens that end generation (EOS, and an end-of-turn token where the model has one)."""
        self.output_ids.append(token)
        if self.spec is not None:
            self.spec.index.tokens.append(token)
        p = self.params
        if (token in end_ids and not p.ignore_eos) or token in p.stop_token_ids:
            self.finish_reason = FinishReason.STOP
            return self._release_all()
        before = len(self.text)
        self.text += self._decoder.push(token)
        if p.stop:
            i = self._stops.find(self.text, before)
            if i != -1:
                self.text = self.text[:i]
                self.finish_reason = FinishReason.STOP
                out = self.text[self.sent :]
                self.sent = len(self.text)
                return out
        if len(self.output_ids) >= p.max_tokens or self.total_len >= max_len:
            self.finish_reason = FinishReason.LENGTH
            return self._release_all()
        keep = self._stops.holdback(self.text) if p.stop else 0
        end = len(self.text) - keep
        out = self.text[self.sent : end] if end > self.sent else ""
        self.sent = max(self.sent, end)
        return out

    def _release_all(self) -> str:
        self.text += self._decoder.flush()
        out = self.text[self.sent :]
        self.sent = len(self.text)
        return out
