"""Automatic prefix caching: the K/V of finished sequences, kept and reused by later prompts.

Why: system prompts, chat history and RAG templates repeat across requests, and prefill is most of
the time to first token. Recomputing a 1,024-token prefix costs ~1 s on two cores; copying its K/V
costs milliseconds. K/V of a token depend only on the tokens before it and its position, so a
prompt that starts with the same tokens can start from the stored K/V, bit for bit what prefill
would have written (our kernels compute rows independently; tests check identical outputs).

Shape: the running cache keeps its slots compact (kv_cache.py), so a finished sequence's K/V cannot
stay where it was. On release, its full blocks (``block`` tokens each) are copied into a store of
``entries`` slots of its own. Entries are hash-addressed: every block boundary of an entry is
indexed by a chained hash of the tokens up to it, so a lookup walks the new prompt block by block
and finds the longest stored prefix in O(prompt blocks); the tokens are compared before use, so a
hash collision can never serve another prompt's K/V. Least recently used entries are evicted.
At least one prompt token is always left to prefill: its logits start the answer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence

from server.llm.kv_cache import SlotKVCache


class PrefixCache:
    def __init__(self, cache: SlotKVCache, entries: int, block: int = 16) -> None:
        if entries < 1 or block < 1:
            raise ValueError("a prefix cache needs at least one entry and a positive block size")
        k = cache.k
        shape = (k.shape[0], entries, k.shape[2], cache.max_len, k.shape[4])
        self.k = k.new_zeros(shape)
        self.v = cache.v.new_zeros(shape)
        self.cache = cache
        self.block = block
        self.tokens: list[tuple[int, ...]] = [()] * entries  # the tokens whose K/V each entry holds
        self.lru: OrderedDict[int, None] = OrderedDict()  # entries in use, least recently used first
        self.index: dict[int, tuple[int, int]] = {}  # chained block hash -> (entry, tokens up to it)
        self.queried_tokens = 0  # prompt tokens looked up (vLLM: prefix_cache_queries)
        self.hit_tokens = 0  # of those, served from the store (vLLM: prefix_cache_hits)

    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes

    def _hashes(self, tokens: Sequence[int]) -> Iterator[tuple[int, int]]:
        """(chained hash, tokens covered) at every full block boundary of ``tokens``."""
        h = 0
        b = self.block
        for end in range(b, len(tokens) + 1, b):
            h = hash((h, tuple(tokens[end - b : end])))
            yield h, end

    def _longest(self, tokens: Sequence[int]) -> tuple[int, int]:
        """(entry, tokens) of the longest stored prefix of ``tokens``; (-1, 0) when none."""
        best = (-1, 0)
        for h, end in self._hashes(tokens):
            hit = self.index.get(h)
            if hit is None:
                break
            entry, n = hit
            if n != end or self.tokens[entry][:n] != tuple(tokens[:n]):  # a collision: never trust a hash
                break
            best = (entry, n)
        return best

    def restore(self, prompt: Sequence[int], slot: int) -> int:
        """Copy the longest stored prefix of ``prompt`` (one token short of it at most) into ``slot``
        of the running cache; returns how many tokens need no prefill."""
        self.queried_tokens += len(prompt)
        entry, n = self._longest(prompt[: len(prompt) - 1])
        if n == 0:
            return 0
        self.cache.k[:, slot, :, :n].copy_(self.k[:, entry, :, :n])
        self.cache.v[:, slot, :, :n].copy_(self.v[:, entry, :, :n])
        self.cache.lengths[slot] = n
        self.lru.move_to_end(entry)
        self.hit_tokens += n
        return n

    def save(self, tokens: Sequence[int], slot: int) -> None:
        """Keep the full blocks of ``tokens`` (whose K/V are in ``slot``) before the slot is freed."""
        n = len(tokens) // self.block * self.block
        if n == 0:
            return
        entry, have = self._longest(tokens[:n])
        if have == n:  # already stored (perhaps inside a longer entry): just recently used
            self.lru.move_to_end(entry)
            return
        entry = self._take_entry()
        self.k[:, entry, :, :n].copy_(self.cache.k[:, slot, :, :n])
        self.v[:, entry, :, :n].copy_(self.cache.v[:, slot, :, :n])
        self.tokens[entry] = tuple(tokens[:n])
        for h, end in self._hashes(self.tokens[entry]):
            self.index[h] = (entry, end)  # a newer entry serves shared blocks from now on
        self.lru[entry] = None

    def _take_entry(self) -> int:
        free = next((e for e in range(len(self.tokens)) if e not in self.lru), None)
        if free is not None:
            return free
        victim, _ = self.lru.popitem(last=False)
        for h, _end in self._hashes(self.tokens[victim]):
            if self.index.get(h, (None,))[0] == victim:
                del self.index[h]
        self.tokens[victim] = ()
        return victim
