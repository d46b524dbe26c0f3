"""Next-token sampling for a batch of rows, each with its own parameters.

Greedy rows are taken with one argmax over the batch. Sampled rows use a per-request
``torch.Generator``: a seeded request draws the same tokens whatever else shares its batch.
Order as in vLLM: repetition penalty, temperature, top-k, top-p, then a draw.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from server.llm.params import SamplingParams


class RowState:
    """Per-sequence sampling state: RNG and the set of tokens seen (for the penalty)."""

    __slots__ = ("generator", "params", "seen")

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

    def observe(self, token: int) -> None:
        if self.seen is not None:
            self.seen[token] = True


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL/HF rule: seen tokens' positive logits are divided by the penalty, negative multiplied."""
    penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalized, logits)


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
    if state.seen is not None:
        logits = apply_repetition_penalty(logits, state.seen, p.repetition_penalty)
    if p.greedy:
        return int(torch.argmax(logits))
    logits = logits / p.temperature
    logits = filter_top_k_top_p(logits, p.top_k, p.top_p)
    probs = torch.softmax(logits, dim=-1)
    if not torch.isfinite(probs).all():
        return int(torch.argmax(logits))
    return int(torch.multinomial(probs, 1, generator=state.generator))


def sample(logits: torch.Tensor, states: Sequence[RowState]) -> list[int]:
    """One token per row of ``logits`` [R, V]."""
    out = [0] * len(states)
    plain_greedy = [i for i, s in enumerate(states) if s.params.greedy and s.seen is None]
    if plain_greedy:
        idx = torch.tensor(plain_greedy, dtype=torch.long)
        top = torch.argmax(logits.index_select(0, idx), dim=-1).tolist()
        for i, t in zip(plain_greedy, top, strict=True):
            out[i] = t
    for i, s in enumerate(states):
        if not (s.params.greedy and s.seen is None):
            out[i] = sample_row(logits[i], s)
    for i, s in enumerate(states):
        s.observe(out[i])
    return out
