"""Speculative decoding without a draft model: n-gram prompt lookup (as vLLM's ``ngram`` method
and llama.cpp's ``lookup`` do).

Why it works here: when the output quotes its context (RAG answers, code edits, extraction), the
last few generated tokens have occurred before, and what followed them then is a good guess for
what follows now. The guess (the draft) is verified in one forward step: the last token and the
draft tokens go through the model as one chunk, and the tokens are sampled position by position
exactly as plain decoding would sample them, keeping each draft token only while it equals the
sampled one. With a one-token draft this *is* speculative sampling's rule (accept the draft with
probability p(draft), else draw from p with the draft removed) and it leaves every sampler's
state (RNG draws, penalties, grammar) as plain decoding would: the output is the same token for
token, greedy or seeded, and only faster when drafts are accepted.

What a verification costs is the catch on a CPU: a step of 1 + k rows costs ~1.5x (k = 1) to
~2.2x (k = 4) a one-row step (measured, SmolLM2 Q4_1, AVX-512 VNNI), so drafts that are mostly
rejected slow a stream down. :class:`DraftController` therefore sizes each draft from the
acceptance it has seen and stops drafting for a while (backing off longer each time) when
acceptance falls below what pays for the extra rows.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_NGRAM = 2  # a single repeated token is too weak a signal to draft from
MAX_NGRAM = 4


class NgramIndex:
    """Where each n-gram (n in [MIN_NGRAM, MAX_NGRAM]) of a token sequence last occurred.

    Maps an n-gram to the position right after its most recent occurrence that is not the
    sequence's own suffix, so a lookup of the current suffix finds the previous time it was seen.
    Updated incrementally, O(MAX_NGRAM) per token.
    """

    __slots__ = ("_after", "_indexed", "tokens")

    def __init__(self, tokens: list[int]) -> None:
        self.tokens = tokens  # shared with the request (prompt + output), appended by it
        self._after: dict[tuple[int, ...], int] = {}
        self._indexed = 0  # n-grams ending before this position are in the map

    def _catch_up(self) -> None:
        toks = self.tokens
        # index n-grams that end at positions < len - 1: the one ending at the last token is the
        # suffix being looked up, and must map to an *earlier* occurrence
        for end in range(self._indexed, len(toks) - 1):
            for n in range(MIN_NGRAM, MAX_NGRAM + 1):
                start = end - n + 1
                if start < 0:
                    break
                self._after[tuple(toks[start : end + 1])] = end + 1
        self._indexed = max(self._indexed, len(toks) - 1)

    def propose(self, k: int) -> list[int]:
        """Up to ``k`` tokens that followed the longest earlier occurrence of the current suffix."""
        if k <= 0:
            return []
        self._catch_up()
        toks = self.tokens
        for n in range(min(MAX_NGRAM, len(toks)), MIN_NGRAM - 1, -1):
            j = self._after.get(tuple(toks[-n:]))
            if j is not None:
                return toks[j : j + k]
        return []


@dataclass(slots=True)
class DraftController:
    """Per-request draft sizing and the switch-off when drafts do not pay.

    ``mean_accepted`` is an exponential average of draft tokens accepted per verification. Break-even
    is ~1 accepted token per verification (a 1 + k row step costs ~1.5-2.2x a one-row step); below
    ``min_accepted`` drafting pauses for ``pause`` steps, doubling each time it fails again.
    """

    max_tokens: int
    mean_accepted: float = 2.0  # optimistic start: the first drafts decide
    min_accepted: float = 0.8
    pause: int = 8
    paused_for: int = 0
    drafted: int = 0  # draft tokens verified (for stats)
    accepted: int = 0  # of which accepted

    def draft_len(self) -> int:
        """Tokens to draft this step (0: decode plainly)."""
        if self.paused_for > 0:
            self.paused_for -= 1
            if self.paused_for == 0:
                self.mean_accepted = 1.5  # retry with a medium draft
            return 0
        # draft about twice what was accepted lately: long drafts when quoting, short when unsure
        return max(1, min(self.max_tokens, int(2 * self.mean_accepted) + 1))

    def record(self, drafted: int, accepted: int) -> None:
        self.drafted += drafted
        self.accepted += accepted
        self.mean_accepted = 0.6 * self.mean_accepted + 0.4 * accepted
        if self.mean_accepted < self.min_accepted:
            self.paused_for = self.pause
            self.pause = min(self.pause * 2, 256)
        elif accepted == drafted:
            self.pause = 8


class Speculator:
    """A request's drafting state: its n-gram index and its controller."""

    __slots__ = ("control", "index")

    def __init__(self, tokens: list[int], max_tokens: int) -> None:
        self.index = NgramIndex(tokens)
        self.control = DraftController(max_tokens)

    def propose(self, budget: int) -> list[int]:
        k = min(self.control.draft_len(), budget)
        return self.index.propose(k) if k > 0 else []
