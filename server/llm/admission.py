"""Admission by expected time to first token: refuse at once what the queue cannot serve in time.

A row count (``max_waiting``) bounds memory, not latency: 64 chats admitted on 2 cores all waited,
TTFT p95 11.9 s. Here each new request's TTFT is estimated from what is ahead of it and how fast the
engine has been going, and refused (RESOURCE_EXHAUSTED, so the client backs off or goes elsewhere)
when it exceeds the request class's limit (``llm.admission``: a factor of the request's own unloaded
TTFT, once the engine is full; ``llm.max_expected_ttft_s``: an absolute cap): those accepted keep
their latency.

The estimate replays the queue on the KV slots: every running sequence holds its slot for its
remaining ``max_tokens`` decode steps; each request ahead, in order, takes the first slot to free
up, prefills its prompt (prefills are serial) and then holds the slot for its own ``max_tokens``
steps; this request gets the next slot and its first token when its prompt is prefilled. Output
lengths are taken at ``max_tokens`` (an upper bound: a stream stopping early frees its slot sooner,
so the estimate errs toward refusing). Both rates are moving averages of the engine's own steps;
until it has measured a prefill, everything is admitted.

Measured (bench/admission.py, 2 cores, 16 slots, 32-token streams at 2x the sustainable rate): the
first version counted only the prompts ahead and the one soonest-finishing sequence, and admitted
requests whose TTFT p95 was 4.7 s against a 1 s limit; the queue replay holds the accepted p95
near the limit.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from server.llm.errors import WaitingQueueFullError

if TYPE_CHECKING:
    from server.config import LLMConfig
    from server.llm.request import Request

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
            self.s_per_prefill_token = ewma(self.s_per_prefill_token, per)
        if decode_rows > 0:
            # steps that also prefill count too: under steady arrivals most steps do, and a sequence's
            # remaining tokens then take that long each (decode-only steps alone read 2-3x too fast)
            self.s_per_decode_step = ewma(self.s_per_decode_step, step_s)

    def unloaded_ttft_s(self, prompt_len: int) -> float | None:
        """The first token of a ``prompt_len``-token prompt on an idle engine: its prefill and a step."""
        if self.s_per_prefill_token is None:
            return None
        return prompt_len * self.s_per_prefill_token + (self.s_per_decode_step or 0.0)

    def expected_ttft_s(self, prompt_len: int, waiting: Sequence[tuple[int, int]], free_slots: int,
                        running_remaining: Iterable[int]) -> float | None:
        """``waiting``: (prompt tokens still to prefill, max_tokens) of each request ahead, in order.
        None until a prefill step has been measured."""
        if self.s_per_prefill_token is None:
            return None
        step = self.s_per_decode_step or 0.0
        slots = [0.0] * max(0, free_slots) + [r * step for r in running_remaining]  # when each frees up
        if not slots:
            slots = [0.0]
        heapq.heapify(slots)
        prefilled = 0.0  # when the (serial) prefill of the requests ahead is done
        for prompt, max_tokens in waiting:
            prefilled = max(prefilled, heapq.heappop(slots)) + prompt * self.s_per_prefill_token
            heapq.heappush(slots, prefilled + max_tokens * step)
        return max(prefilled, heapq.heappop(slots)) + prompt_len * self.s_per_prefill_token


def limit_s(cfg: LLMConfig, request_class: str, unloaded_s: float | None, busy: bool) -> float | None:
    """The expected TTFT over which a request of ``request_class`` is refused (None: admit): the
    class's factor x its own unloaded TTFT (``llm.admission``, while ``busy``) and the absolute
    ``llm.max_expected_ttft_s``, whichever is lower. Batch requests are never refused here."""
    if request_class == "batch":
        return None
    limits = [cfg.max_expected_ttft_s] if cfg.max_expected_ttft_s is not None else []
    a = cfg.admission
    if a.enabled and unloaded_s is not None and (busy or not a.beyond_batch_only):
        factor = a.rag_factor if request_class == "rag" else a.interactive_factor
        limits.append(max(a.floor_s, factor * unloaded_s))
    return min(limits) if limits else None


def refuse_if_late(estimator: TtftEstimator, cfg: LLMConfig, request_class: str, prompt_len: int,
                   waiting: Sequence[Request], running: Sequence[Request], free_slots: int) -> None:
    """Raise ``WaitingQueueFullError`` (RESOURCE_EXHAUSTED) when the expected time to first token of a
    ``prompt_len``-token prompt behind ``waiting`` is over the class's limit (``limit_s``). Reads the
    scheduler's lists as of the last step: an estimate, not a promise."""
    if not waiting and not running:
        # an idle engine starts the request at once: no estimate beats that, and refusing here could
        # never end (a cold first prefill put the estimate at 1.1 s for a 30-token prompt, the 1 s
        # absolute cap refused every request after it, and no further step corrected the estimate)
        return
    busy = len(waiting) + len(running) >= cfg.max_num_seqs
    limit = limit_s(cfg, request_class, estimator.unloaded_ttft_s(prompt_len), busy)
    if limit is None:
        return
    expected = estimator.expected_ttft_s(
        prompt_len, [(max(0, r.prefill_len - r.n_cached), r.params.max_tokens) for r in waiting], free_slots,
        [max(0, r.params.max_tokens - len(r.output_ids)) for r in running],
    )
    if expected is not None and expected > limit:
        raise WaitingQueueFullError(
            f"expected time to first token {expected:.2f} s is over this {request_class} request's limit of "
            f"{limit:.2f} s (llm.admission; {len(waiting)} requests waiting, {len(running)} running)"
        )


def ewma(old: float | None, new: float) -> float:
    """The moving average of an engine's step costs after one more step (the first step starts it)."""
    return new if old is None else (1 - ALPHA) * old + ALPHA * new
