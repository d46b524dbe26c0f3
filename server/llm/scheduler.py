"""Iteration-level scheduling: which tokens run in the next forward step.

Every step: each running request that has finished its prompt decodes one token; the rest of
the token budget (``max_num_batched_tokens``; while streams decode, what keeps the step's measured
time within a bound: server/llm/step_budget.py) goes to prompt chunks, admitting waiting requests
while KV slots are free, most urgent first (``priority``, lower first), then oldest. When no slot
is free and a waiting request is more urgent than a running one, the running one is preempted: it
gives up its slot (its K/V saved to the prefix cache) and resumes later where it stopped. A long
prompt is split over several steps (chunked prefill), and running streams get a token every step.

With speculative decoding on and few streams decoding (``speculative_max_batch``), a decoding
request whose recent tokens occurred before in its context is verified instead: its last token and
a draft of the tokens that followed then run as one chunk (server/llm/speculative.py), and the
engine keeps what the sampler confirms (:meth:`Scheduler.commit_verify`).
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass

import torch

from server.llm.kv_cache import SlotKVCache
from server.llm.model import PrefillSegment, StepBatch
from server.llm.prefix_cache import PrefixCache
from server.llm.request import Request
from server.llm.speculative import Speculator
from server.llm.step_budget import PrefillBudget


def _rank(req: Request) -> tuple[int, float]:
    """Scheduling order: priority (lower first), then arrival."""
    return req.priority, req.arrival_ts


@dataclass(slots=True)
class ScheduledStep:
    batch: StepBatch
    sampled: list[Request]  # one per row of the logits, in order
    prefill_chunks: list[tuple[Request, int]]  # (request, tokens cached by this step)
    decodes: list[Request]
    # speculative verifications, (request, draft): their 1 + len(draft) logits rows follow `sampled`'s
    verifies: list[tuple[Request, list[int]]]


class Scheduler:
    def __init__(
        self,
        cache: SlotKVCache,
        max_num_batched_tokens: int,
        prefix: PrefixCache | None = None,
        speculative_tokens: int = 0,
        speculative_max_batch: int = 0,
        prefill_budget: PrefillBudget | None = None,
    ) -> None:
        self.cache = cache
        self.prefix = prefix
        self.budget = max_num_batched_tokens
        # prompt tokens per step while streams decode, by measured step time (server/llm/step_budget.py)
        self.prefill_budget = prefill_budget
        self.spec_tokens = speculative_tokens  # longest draft; 0 = no speculative decoding
        self.spec_max_batch = speculative_max_batch
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.by_slot: dict[int, Request] = {}
        self.preemptions = 0  # running requests that gave up their slot to a more urgent one

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def release(self, req: Request) -> None:
        """Take a request out (finished, cancelled or expired) and free its slot now."""
        if req.slot >= 0:
            self._free_slot(req)
        else:
            with contextlib.suppress(ValueError):
                self.waiting.remove(req)

    def _free_slot(self, req: Request) -> None:
        self.running.remove(req)
        del self.by_slot[req.slot]
        if self.prefix is not None and req.n_cached:
            # the tokens whose K/V this slot holds: the prompt, then the output fed back so far
            self.prefix.save(req.context_ids()[: req.n_cached], req.slot)
        moved = self.cache.free(req.slot)
        if moved is not None:
            other = self.by_slot.pop(moved)
            other.slot = req.slot
            self.by_slot[req.slot] = other
        req.slot = -1

    def _preempt_for_waiting(self) -> None:
        """While no slot is free and a waiting request is more urgent (a lower priority value) than
        the least urgent running one, that one gives up its slot and waits again. Its K/V go to the
        prefix cache when there is one, so resuming usually copies them back instead of recomputing."""
        while self.waiting and self.cache.free_slots == 0 and self.running:
            best = min(self.waiting, key=_rank)
            victim = max(self.running, key=_rank)
            if victim.priority <= best.priority:
                return
            self._free_slot(victim)
            victim.preempted()
            self.waiting.append(victim)
            self.preemptions += 1

    def schedule(self) -> ScheduledStep | None:
        self._preempt_for_waiting()
        decodes = [s for s in self.running if not s.in_prefill]
        verifies = self._drafts(decodes)
        if verifies:
            drafted = {id(s) for s, _ in verifies}
            decodes = [s for s in decodes if id(s) not in drafted]
        decode_rows = len(decodes) + sum(1 + len(d) for _, d in verifies)
        budget = max(self.budget - decode_rows, 1)
        if self.prefill_budget is not None:
            budget = min(budget, self.prefill_budget.tokens(decode_rows))
        chunks: list[tuple[Request, int]] = []
        for s in self.running:
            if budget <= 0:
                break
            if s.in_prefill:
                n = min(s.prefill_len - s.n_cached, budget)
                chunks.append((s, n))
                budget -= n
        while budget > 0 and self.waiting and self.cache.free_slots > 0:
            s = min(self.waiting, key=_rank)  # most urgent first, then oldest
            self.waiting.remove(s)
            s.slot = self.cache.allocate()
            self.by_slot[s.slot] = s
            self.running.append(s)
            if self.prefix is not None:
                s.n_cached = self.prefix.restore(s.context_ids()[: s.prefill_len], s.slot)
            n = min(s.prefill_len - s.n_cached, budget)
            chunks.append((s, n))
            budget -= n
        if not decodes and not chunks and not verifies:
            return None

        ids: list[int] = []
        pos: list[int] = []
        sampled: list[Request] = []
        rows: list[int] = []
        for s in decodes:
            p = s.total_len - 1
            ids.append(s.output_ids[-1])
            pos.append(p)
            rows.append(len(rows))
            sampled.append(s)
        prefills: list[PrefillSegment] = []
        verify_rows: list[int] = []
        for s, draft in verifies:  # the last token (its K/V not yet cached) and the draft
            row, start = len(ids), s.n_cached
            ids.append(s.output_ids[-1])
            ids.extend(draft)
            pos.extend(range(start, start + 1 + len(draft)))
            prefills.append(PrefillSegment(s.slot, start, 1 + len(draft), row))
            verify_rows.extend(range(row, row + 1 + len(draft)))
        for s, n in chunks:
            row = len(ids)
            start = s.n_cached
            ids.extend(s.prefill_ids(start, n))
            pos.extend(range(start, start + n))
            prefills.append(PrefillSegment(s.slot, start, n, row))
            if start + n == s.prefill_len:
                rows.append(row + n - 1)
                sampled.append(s)
        batch = StepBatch(
            token_ids=torch.tensor(ids, dtype=torch.long),
            positions=torch.tensor(pos, dtype=torch.long),
            decode_slots=torch.tensor([s.slot for s in decodes], dtype=torch.long),
            decode_lengths=[s.total_len for s in decodes],
            prefills=prefills,
            sample_rows=torch.tensor(rows + verify_rows, dtype=torch.long),
        )
        return ScheduledStep(batch, sampled, chunks, decodes, verifies)

    def _drafts(self, decodes: list[Request]) -> list[tuple[Request, list[int]]]:
        """Drafts for the decoding requests that have one, when speculation is on and few decode."""
        if not self.spec_tokens or not decodes or len(decodes) > self.spec_max_batch:
            return []
        out: list[tuple[Request, list[int]]] = []
        room = self.budget // 2  # leave the step's other half to prompt chunks
        for s in decodes:
            # the draft's tokens and the one sampled after them must fit max_tokens and the context
            limit = min(s.params.max_tokens - len(s.output_ids) - 1, self.cache.max_len - s.total_len, room - 1)
            if limit <= 0:
                continue
            if s.spec is None:
                s.spec = Speculator(s.context_ids(), self.spec_tokens)
            draft = s.spec.propose(limit)
            if draft:
                out.append((s, draft))
                room -= 1 + len(draft)
        return out

    def commit(self, step: ScheduledStep) -> None:
        """Account the tokens a finished forward step wrote into the cache."""
        for s in step.decodes:
            s.n_cached += 1
            self.cache.lengths[s.slot] = s.n_cached
        for s, n in step.prefill_chunks:
            s.n_cached += n
            self.cache.lengths[s.slot] = s.n_cached

    def commit_verify(self, req: Request, valid: int) -> None:
        """Account a verification: of its 1 + len(draft) rows, the first ``valid`` hold the K/V of
        true tokens (the last token and the accepted draft tokens); the rest are overwritten later."""
        req.n_cached += valid
        if req.slot >= 0:
            self.cache.lengths[req.slot] = req.n_cached
