"""Automatic prefix caching over the paged KV cache: full blocks indexed by the tokens they hold.

Why: system prompts, chat history and RAG templates repeat across requests, and prefill is most of
the time to first token. K/V of a token depend only on the tokens before it and its position, so a
prompt that starts with the same tokens can use the stored K/V, bit for bit what prefill would have
written (our kernels compute rows independently; tests check identical outputs). With the paged
cache (server/llm/kv_cache.py) reuse is free: the new sequence's block table points at the blocks
already holding those tokens, nothing is copied, and concurrent requests with the same system
prompt share one copy of it while they run.

Index: a block is keyed by (the id of the block before it in its sequence, its tokens). Ids are
never reused, so a key names exactly one token prefix: a lookup walks the prompt block by block
with exact dict lookups (no hash can collide into another prompt's K/V), O(prompt blocks). A block
is indexed once it is full of committed tokens (the scheduler's commit), so a request admitted
while another still decodes the same prompt already finds it.

Eviction: a block nobody references any more stays indexed and *parked*; the pool takes parked
blocks, least recently used first, only when no empty block is left. A sequence's blocks are parked
last-first, so a chain loses its tail before its head (the head is what other prompts share).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

Key = tuple[int, tuple[int, ...]]


class PrefixCache:
    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self._by_key: dict[Key, int] = {}
        self._key_of: dict[int, Key] = {}
        self._id_of: dict[int, int] = {}  # block -> the id its successors key on
        self._next_id = 1  # 0: the start of every sequence
        self._parked: OrderedDict[int, None] = OrderedDict()  # unreferenced indexed blocks, LRU first
        self._seq: dict[int, tuple[int, int]] = {}  # slot -> (blocks indexed or matched, id of the last)
        # counted by the scheduler when a looked-up request is admitted (a retried admission counts once)
        self.queried_tokens = 0  # prompt tokens looked up (vLLM: prefix_cache_queries)
        self.hit_tokens = 0  # of those, served from cached blocks (vLLM: prefix_cache_hits)

    def count_admission(self, prompt_tokens: int, hit_tokens: int) -> None:
        """Counted once per admitted request, not per lookup: an admission retried for want of
        blocks would otherwise count its prompt twice."""
        self.queried_tokens += prompt_tokens
        self.hit_tokens += hit_tokens

    @property
    def parked(self) -> int:
        return len(self._parked)

    @property
    def indexed_blocks(self) -> int:
        return len(self._key_of)

    def is_indexed(self, block: int) -> bool:
        return block in self._key_of

    def lookup(self, slot: int, tokens: Sequence[int]) -> list[int]:
        """Blocks holding the longest indexed prefix of ``tokens`` (full blocks only), in order;
        ``slot`` continues its chain from there."""
        bs = self.block_size
        hit: list[int] = []
        parent = 0
        for j in range(len(tokens) // bs):
            b = self._by_key.get((parent, tuple(tokens[j * bs : (j + 1) * bs])))
            if b is None:
                break
            hit.append(b)
            parent = self._id_of[b]
        self._seq[slot] = (len(hit), parent)
        return hit

    def indexed(self, slot: int) -> int:
        """Blocks of ``slot`` already indexed (or matched at lookup)."""
        return self._seq.get(slot, (0, 0))[0]

    def index(self, slot: int, blocks: Sequence[int], tokens: Sequence[int]) -> None:
        """Index the full blocks of ``tokens`` (held, in order, by ``blocks``) not indexed yet. A block
        whose tokens another block already holds stays unindexed (it is freed as usual)."""
        bs = self.block_size
        done, parent = self._seq.get(slot, (0, 0))
        full = len(tokens) // bs
        for j in range(done, full):
            key = (parent, tuple(tokens[j * bs : (j + 1) * bs]))
            have = self._by_key.get(key)
            if have is not None:
                parent = self._id_of[have]
                continue
            b = blocks[j]
            self._by_key[key] = b
            self._key_of[b] = key
            self._id_of[b] = parent = self._next_id
            self._next_id += 1
        self._seq[slot] = (max(done, full), parent)

    def forget_sequence(self, slot: int) -> None:
        self._seq.pop(slot, None)

    def park(self, block: int) -> bool:
        """``block`` lost its last reference: keep it for reuse if indexed (True), else False."""
        if block not in self._key_of:
            return False
        self._parked[block] = None
        return True

    def unpark(self, block: int) -> None:
        del self._parked[block]

    def evict(self) -> int:
        """The least recently used parked block, taken out of the index, for a new owner."""
        block, _ = self._parked.popitem(last=False)
        del self._by_key[self._key_of.pop(block)]
        del self._id_of[block]
        return block
