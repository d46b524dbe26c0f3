"""Next-token sampling for a batch of rows, each with its own parameters.

Greedy rows are taken with one argmax over the batch. Sampled rows use a per-request
``torch.Generator``: a seeded request draws the same tokens whatever else shares its batch.
Order as in vLLM: repetition penalty, then OpenAI's presence and frequency penalties (over the
generated tokens only, as vLLM and OpenAI count them), temperature, min-p, top-k, top-p, a draw.
Penalties apply to greedy rows too (they change which token is the argmax). A row with a response
format has its logits masked by its grammar first (server/llm/structured.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from server.llm.outputs import TokenLogprob
from server.llm.params import SamplingParams

if TYPE_CHECKING:
    from server.llm.structured import GrammarMatcher


class RowState:
    """Per-sequence sampling state: RNG and the set of tokens seen (for the penalty)."""

    __slots__ = ("counts", "generator", "grammar", "params", "seen")

    def __init__(self, params: SamplingParams, prompt_ids: Sequence[int], vocab_size: int) -> None:
        self.params = params
        self.generator: torch.Generator | None = None
        if not params.greedy:
            self.generator = torch.Generator()
            self.generator.manual_seed(params.seed if params.seed is not None else int(torch.seed()) % 2**63)
        self.seen: torch.Tensor | None = None
        if params.repetition_penalty != 1.0:
            self.seen = torch.zeros(vocab_size, dtype=torch.bool)
            if prompt_ids:
                self.seen[torch.tensor(list(prompt_ids), dtype=torch.long)] = True
        # generated tokens' counts (not the prompt's): OpenAI's presence and frequency penalties
        self.counts: torch.Tensor | None = torch.zeros(vocab_size) if params.penalized else None
        self.grammar: GrammarMatcher | None = None  # set by the engine for a response format

    @property
    def plain(self) -> bool:
        """Greedy with nothing that changes the logits: one batched argmax serves it."""
        return self.params.greedy and self.seen is None and self.counts is None and self.grammar is None

    def observe(self, token: int) -> None:
        if self.seen is not None:
            self.seen[token] = True
        if self.counts is not None:
            self.counts[token] += 1
        if self.grammar is not None:
            self.grammar.accept(token)


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL/HF rule: seen tokens' positive logits are divided by the penalty, negative multiplied."""
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


def apply_openai_penalties(logits: torch.Tensor, counts: torch.Tensor, presence: float,
                           frequency: float) -> torch.Tensor:
    """OpenAI's rule: logit -= presence * (count > 0) + frequency * count."""
    return logits - presence * (counts > 0).to(logits.dtype) - frequency * counts.to(logits.dtype)


def filter_min_p(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Mask tokens whose probability is below ``min_p`` times the most likely token's."""
    if min_p <= 0.0:
        return logits
    probs = torch.softmax(logits, dim=-1)
    return logits.masked_fill(probs < min_p * probs.max(), float("-inf"))


def filter_top_k_top_p(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask (to -inf) everything outside the top-k and the top-p nucleus of one row."""
    if top_k and top_k < logits.shape[-1]:
        keep = torch.topk(logits, top_k).indices  # exactly k, ties broken by index
        kept = torch.full_like(logits, float("-inf"))
        kept[keep] = logits[keep]
        logits = kept
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        cum = torch.cumsum(probs, dim=-1)
        drop = (cum - probs) >= top_p  # keep the smallest prefix whose mass reaches top_p
        drop[0] = False
        logits = logits.clone()
        logits[order[drop]] = float("-inf")
    return logits


def sample_row(logits: torch.Tensor, state: RowState) -> int:
    p = state.params
    if state.grammar is not None:  # first: no penalty or temperature can bring a forbidden token back
        logits = state.grammar.mask(logits)
    if state.seen is not None:
        logits = apply_repetition_penalty(logits, state.seen, p.repetition_penalty)
    if state.counts is not None:
        logits = apply_openai_penalties(logits, state.counts, p.presence_penalty, p.frequency_penalty)
    if p.greedy:
        return int(torch.argmax(logits))
    logits = logits / p.temperature
    logits = filter_min_p(logits, p.min_p)
    logits = filter_top_k_top_p(logits, p.top_k, p.top_p)
    probs = torch.softmax(logits, dim=-1)
    if not torch.isfinite(probs).all():
        return int(torch.argmax(logits))
    return int(torch.multinomial(probs, 1, generator=state.generator))


def sample(logits: torch.Tensor, states: Sequence[RowState]) -> list[int]:
    """One token per row of ``logits`` [R, V]."""
    out = [0] * len(states)
    plain_greedy = [i for i, s in enumerate(states) if s.plain]
    if plain_greedy:
        idx = torch.tensor(plain_greedy, dtype=torch.long)
        top = torch.argmax(logits.index_select(0, idx), dim=-1).tolist()
        for i, t in zip(plain_greedy, top, strict=True):
            out[i] = t
    for i, s in enumerate(states):
        if not s.plain:
            out[i] = sample_row(logits[i], s)
    for i, s in enumerate(states):
        s.observe(out[i])
    return out


def token_logprob(row: torch.Tensor, token: int, top: int, token_bytes: Callable[[int], bytes]) -> TokenLogprob:
    """The sampled token's log-probability under the raw logits (before penalties, temperature and
    grammar masks, as vLLM reports them by default), with the ``top`` likeliest tokens'."""
    lp = torch.log_softmax(row.float(), dim=-1)
    best: list[tuple[int, float, bytes]] = []
    if top:
        values, ids = torch.topk(lp, top)
        best = [(i, v, token_bytes(i)) for i, v in zip(ids.tolist(), values.tolist(), strict=True)]
    return TokenLogprob(token, float(lp[token]), token_bytes(token), best)
