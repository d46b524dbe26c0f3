"""Iteration-level scheduling: which tokens run in the next forward step.

Every step: each running request that has finished its prompt decodes one token; the rest of
the token budget (``max_num_batched_tokens``; while streams decode, what keeps the step's measured
time within a bound: server/llm/step_budget.py) goes to prompt chunks, admitting waiting requests
while sequence slots and KV blocks are free (server/llm/kv_cache.py), most urgent first
(``priority``, lower first), then oldest; an admitted prompt first shares the cached blocks of its
longest indexed prefix (server/llm/prefix_cache.py). A running request is preempted when no slot is
free and a waiting request is more urgent, or when the block pool cannot hold the next token of a
more urgent stream: it gives up its blocks and resumes later where it stopped. Its full blocks stay
indexed and parked, so resuming usually re-shares them (no copy, no recompute); what was evicted
meanwhile is recomputed. A long prompt is split over several steps (chunked prefill), and running
streams get a token every step.

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

from server.llm.kv_cache import PagedKVCache
from server.llm.llama import PrefillSegment, StepBatch
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
        cache: PagedKVCache,
        max_num_batched_tokens: int,
        speculative_tokens: int = 0,
        speculative_max_batch: int = 0,
        prefill_budget: PrefillBudget | None = None,
    ) -> None:
        self.cache = cache
        self.budget = max_num_batched_tokens
        # prompt tokens per step while streams decode, by measured step time (server/llm/step_budget.py)
        self.prefill_budget = prefill_budget
        self.spec_tokens = speculative_tokens  # longest draft; 0 = no speculative decoding
        self.spec_max_batch = speculative_max_batch
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.by_slot: dict[int, Request] = {}
        self.preemptions = 0  # running requests that gave up their slot or blocks to a more urgent one

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
        self.cache.free(req.slot)  # its indexed full blocks stay parked for reuse
        req.slot = -1

    def _preempt(self, victim: Request) -> None:
        self._free_slot(victim)
        victim.preempted()
        self.waiting.append(victim)
        self.preemptions += 1

    def _preempt_for_waiting(self) -> None:
        """While no slot is free and a waiting request is more urgent (a lower priority value) than
        the least urgent running one, that one gives up its slot and waits again."""
        while self.waiting and self.cache.free_slots == 0 and self.running:
            best = min(self.waiting, key=_rank)
            victim = max(self.running, key=_rank)
            if victim.priority <= best.priority:
                return
            self._preempt(victim)

    def _secure_decodes(self, decodes: list[Request]) -> list[Request]:
        """Blocks for every decoding stream's next token, most urgent first; while the pool is short,
        the least urgent running request (perhaps the stream itself) is preempted."""
        for s in sorted(decodes, key=_rank):
            p = s.n_cached
            while s.slot >= 0 and not self.cache.make_writable(s.slot, p, p + 1):
                self._preempt(max(self.running, key=_rank))
        return [s for s in decodes if s.slot >= 0]

    def schedule(self) -> ScheduledStep | None:
        self._preempt_for_waiting()
        decodes = self._secure_decodes([s for s in self.running if not s.in_prefill])
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
                n = self._chunk(s, budget)
                if n:
                    chunks.append((s, n))
                    budget -= n
        while budget > 0 and self.waiting and self.cache.free_slots > 0:
            s = min(self.waiting, key=_rank)  # most urgent first, then oldest
            slot = self.cache.allocate()
            prompt = s.context_ids()[: s.prefill_len]
            s.n_cached = self.cache.share_prefix(slot, prompt)
            s.slot = slot
            n = self._chunk(s, budget)
            if not n:  # no blocks for it now: it waits (its shared blocks go back)
                self.cache.free(slot)
                s.slot, s.n_cached = -1, 0
                break
            if self.cache.prefix is not None:
                self.cache.prefix.count_admission(len(prompt), s.n_cached)
            self.waiting.remove(s)
            self.by_slot[slot] = s
            self.running.append(s)
            chunks.append((s, n))
            budget -= n
        if not decodes and not chunks and not verifies:
            if any(s.in_prefill for s in self.running):
                # every running prompt waits for blocks another running prompt holds, and no stream
                # decodes (whose growth would preempt): the least urgent gives its blocks up
                self._preempt(max(self.running, key=_rank))
                return self.schedule()
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

    def _chunk(self, s: Request, budget: int) -> int:
        """Prompt tokens ``s`` prefills this step: within the budget and the blocks the pool has,
        made writable (0: none fit now)."""
        n = min(s.prefill_len - s.n_cached, budget, self.cache.room(s.slot, s.n_cached))
        if n > 0 and not self.cache.make_writable(s.slot, s.n_cached, s.n_cached + n):
            raise RuntimeError("KV cache: room() promised blocks that make_writable could not take")
        return max(n, 0)

    def _drafts(self, decodes: list[Request]) -> list[tuple[Request, list[int]]]:
        """Drafts for the decoding requests that have one, when speculation is on and few decode."""
        if not self.spec_tokens or not decodes or len(decodes) > self.spec_max_batch:
            return []
        out: list[tuple[Request, list[int]]] = []
        room = self.budget // 2  # leave the step's other half to prompt chunks
        for s in decodes:
            # the draft's tokens and the one sampled after them must fit max_tokens and the context
            limit = min(s.params.max_tokens - len(s.output_ids) - 1, self.cache.max_len - s.total_len, room - 1,
                        self.cache.room(s.slot, s.n_cached) - 1)
            if limit <= 0:
                continue
            if s.spec is None:
                s.spec = Speculator(s.context_ids(), self.spec_tokens)
            draft = s.spec.propose(limit)
            if draft and self.cache.make_writable(s.slot, s.n_cached, s.n_cached + 1 + len(draft)):
                out.append((s, draft))
                room -= 1 + len(draft)
        return out

    def commit(self, step: ScheduledStep) -> None:
        """Account the tokens a finished forward step wrote into the cache."""
        for s in step.decodes:
            s.n_cached += 1
            self._commit(s)
        for s, n in step.prefill_chunks:
            s.n_cached += n
            self._commit(s)

    def _commit(self, s: Request) -> None:
        """Tell the cache how many of the slot's tokens are valid; it indexes newly full blocks."""
        if s.slot >= 0:
            self.cache.commit(s.slot, s.n_cached, lambda n: s.context_ids()[:n])

    def commit_verify(self, req: Request, valid: int) -> None:
        """Account a verification: of its 1 + len(draft) rows, the first ``valid`` hold the K/V of
        true tokens (the last token and the accepted draft tokens); the rest are overwritten later."""
        req.n_cached += valid
        self._commit(req)
