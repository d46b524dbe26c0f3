"""Chunked prefill budgeted by time: how many prompt tokens a step may take while streams decode.

A fixed token budget per step (``max_num_batched_tokens``) lets a new prompt stall every running
stream for as long as its chunk takes: 256 tokens are ~0.25 s on AVX-512 and ~0.5-1 s on AVX2 (2
cores), so under arrivals the gap between a stream's tokens jumped from ~10 ms to 1.3-1.6 s. Here
the budget follows the engine's measured step costs: while any sequence decodes, a step may hold as
many prompt tokens as keep it within ``stall_factor`` times a decode-only step (at least
``min_chunk``, so a prompt always progresses); with nobody decoding, a prompt gets the whole budget
(there is no stream to stall). Both costs are moving averages of the engine's own steps, so the
budget adapts to the CPU, the model, the context lengths and the load.
"""

from __future__ import annotations

from server.llm.admission import ewma


class PrefillBudget:
    def __init__(self, max_tokens: int, stall_factor: float | None, min_chunk: int) -> None:
        if max_tokens < 1 or min_chunk < 1:
            raise ValueError("max_tokens and min_chunk must be >= 1")
        if stall_factor is not None and stall_factor <= 1:
            raise ValueError("stall_factor must be > 1 (a prefilling step takes longer than a decode-only one)")
        self.max_tokens = max_tokens
        self.stall_factor = stall_factor
        self.min_chunk = min(min_chunk, max_tokens)
        self.decode_step_s: float | None = None  # a step that only decodes
        self.prefill_token_s: float | None = None  # what each prompt token adds to a step

    def tokens(self, decode_rows: int) -> int:
        """Prompt tokens the next step may take beside ``decode_rows`` decode rows (sequences and drafts)."""
        if self.stall_factor is None or decode_rows == 0 or self.decode_step_s is None or not self.prefill_token_s:
            return self.max_tokens
        room = (self.stall_factor - 1.0) * self.decode_step_s
        return max(self.min_chunk, min(self.max_tokens, int(room / self.prefill_token_s)))

    def observe(self, step_s: float, prefill_tokens: int, decode_rows: int) -> None:
        """One engine step: its duration, the prompt tokens it ran and the sequences it decoded."""
        if step_s <= 0:
            return
        if prefill_tokens == 0:
            if decode_rows > 0:
                self.decode_step_s = ewma(self.decode_step_s, step_s)
            return
        base = self.decode_step_s if decode_rows > 0 and self.decode_step_s is not None else 0.0
        self.prefill_token_s = ewma(self.prefill_token_s, max(step_s - base, 0.0) / prefill_tokens)

