"""Admission by expected time to first token: refuse at once what the queue cannot serve in time.

A row count (``max_waiting``) bounds memory, not latency: 64 chats admitted on 2 cores all waited,
TTFT p95 11.9 s. Here each new request's TTFT is estimated from what is ahead of it and how fast the
engine has been going, and refused (RESOURCE_EXHAUSTED, so the client backs off or goes elsewhere)
when it exceeds ``llm.max_expected_ttft_s``: those accepted keep their latency.

The estimate, in seconds: (prompt tokens waiting + this prompt) x seconds per prefilled token, plus,
when no KV slot will be free for it, the time until the running sequence closest to done finishes
(its remaining ``max_tokens`` x seconds per decode step). Both rates are moving averages of the
engine's own steps; until it has measured any, everything is admitted.
"""

from __future__ import annotations

from collections.abc import Iterable

ALPHA = 0.2  # weight of the newest step in the moving averages


class TtftEstimator:
    def __init__(self) -> None:
        self.s_per_prefill_token: float | None = None
        self.s_per_decode_step: float | None = None

    def observe(self, step_s: float, prefill_tokens: int, decode_rows: int) -> None:
        """One engine step: its duration, the prompt tokens it prefilled and the sequences it decoded."""
        if step_s <= 0:
            return
        if prefill_tokens > 0:
            per = step_s / (prefill_tokens + decode_rows)
            self.s_per_prefill_token = _ewma(self.s_per_prefill_token, per)
        elif decode_rows > 0:
            self.s_per_decode_step = _ewma(self.s_per_decode_step, step_s)

    def expected_ttft_s(self, prompt_len: int, waiting_prompt_tokens: int, free_slots: int, waiting: int,
                        running_remaining: Iterable[int]) -> float | None:
        """None until a prefill step has been measured."""
        if self.s_per_prefill_token is None:
            return None
        t = (waiting_prompt_tokens + prompt_len) * self.s_per_prefill_token
        if waiting >= free_slots:  # it waits for a slot: the soonest-finishing sequence's remaining steps
            remaining = min(running_remaining, default=0)
            t += remaining * (self.s_per_decode_step or 0.0)
        return t


def _ewma(old: float | None, new: float) -> float:
    return new if old is None else (1 - ALPHA) * old + ALPHA * new
