"""Paged KV cache: a pool of fixed-size blocks, a block table per running sequence.

Why paging (vLLM's PagedAttention, here on the CPU): with one ``max_model_len`` slot per sequence,
memory is sized by the longest context any request might reach, and a prefix kept for reuse costs a
whole slot and a copy in and out. With blocks, a sequence holds only the blocks its tokens fill, so
the same memory serves long contexts or many short sequences, and a prompt that starts like an
earlier one points its table at the earlier one's blocks (server/llm/prefix_cache.py) instead of
copying them. Shared blocks are read-only; a write into one copies it first (copy-on-write).

Layout: ``k``/``v`` are ``[n_layers, n_kv_heads, n_blocks, block_size, head_dim]``: for one layer and
head, consecutive blocks are adjacent, so a sequence whose blocks are consecutive is one flat run,
as in a slot cache. That matters on the CPU: attention streams K/V from memory, and short runs
scattered over the pool defeat the hardware prefetcher (measured, docs/design/llm.md: decode at 16
streams lost 25% with 4 KiB runs). The free list therefore hands out the lowest free block first
(a heap), so that a prompt's blocks come out consecutive whenever the pool is not fragmented.
kernels/cpp/llm_step.cpp reads the pool through ``block_tables`` directly; the PyTorch forwards
gather with :meth:`gather`. ``block_tables[slot, j]`` is the block holding positions
``j * block_size ..`` of sequence ``slot``.

Ownership: a block has a reference count (tables pointing at it). At zero it is either empty (back
on the ``_empty`` heap) or, when the prefix cache indexed its tokens, parked there as evictable: reused by a
later prompt at no cost, or evicted for a new block only when no empty block is left.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import torch

from server.llm.prefix_cache import PrefixCache


def _zeros(shape: tuple[int, ...], dtype: torch.dtype, device: str | torch.device) -> torch.Tensor:
    """Zeros that take memory only where written: on the CPU, numpy's zeroed allocation is backed by
    the kernel's zero pages (calloc → mmap), which become resident when a block is first written,
    where ``torch.zeros`` writes every byte at once (737 MB resident at start for an idle server)."""
    if torch.device(device).type == "cpu" and dtype in (torch.float32, torch.float16):
        return torch.from_numpy(np.zeros(shape, dtype=np.float32 if dtype == torch.float32 else np.float16))
    return torch.zeros(shape, dtype=dtype, device=device)


def kv_layout(forward: object) -> tuple[torch.device | str, torch.dtype]:
    """Device and dtype of the KV cache a forward writes: its owner's ``device`` and ``kv_dtype``
    or ``dtype`` (GPU backends keep KV on the GPU, in their activation dtype: the triton backend
    writes fp16 keys, which an fp32 cache refuses; the C++ step stores fp16); CPU float32 for plain
    functions and owners without them."""
    owner = getattr(forward, "__self__", forward)  # a bound forward's model, or the model itself
    device = getattr(owner, "device", "cpu")
    dtype = getattr(owner, "kv_dtype", None) or getattr(owner, "dtype", torch.float32)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        dtype = torch.float32
    return device, dtype


class PagedKVCache:
    def __init__(
        self,
        n_layers: int,
        n_slots: int,
        n_kv_heads: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        *,
        block_size: int = 16,
        n_blocks: int | None = None,
        prefix_caching: bool = False,
    ) -> None:
        """``n_slots``: sequences at once (rows of the block table); ``max_len``: positions one sequence
        may reach; ``n_blocks``: the pool (default: every slot at ``max_len``, the memory a slot cache
        takes). Memory is ``n_blocks * block_size`` positions, however it is spread over sequences."""
        if block_size < 1 or block_size & (block_size - 1):
            raise ValueError(f"block_size: must be a power of two, got {block_size}")
        if n_slots < 1 or max_len < 1:
            raise ValueError("n_slots and max_len must be positive")
        self.block_size = block_size
        self.max_blocks = math.ceil(max_len / block_size)  # table entries per sequence
        self.n_blocks = n_slots * self.max_blocks if n_blocks is None else n_blocks
        if self.n_blocks < self.max_blocks:  # else a lone sequence could never reach max_len
            raise ValueError(
                f"n_blocks: the pool ({self.n_blocks} blocks of {block_size}) must hold one sequence of "
                f"max_len={max_len} ({self.max_blocks} blocks)"
            )
        shape = (n_layers, n_kv_heads, self.n_blocks, block_size, head_dim)
        self.k = _zeros(shape, dtype, device)
        self.v = _zeros(shape, dtype, device)
        self.n_slots = n_slots
        self.max_len = max_len
        # int64 for the C++ step (it reads the array in place); unused entries point at block 0
        self.block_tables = np.zeros((n_slots, self.max_blocks), dtype=np.int64)
        self._tables_t = torch.from_numpy(self.block_tables)
        self.lengths = [0] * n_slots  # positions holding valid K/V, per slot (set by the scheduler)
        self._blocks: list[list[int]] = [[] for _ in range(n_slots)]
        self._refs = [0] * self.n_blocks
        self._in_use = 0  # blocks with a reference
        self._empty = list(range(self.n_blocks))  # a heap: lowest block first
        self._free_seqs = list(range(n_slots))  # a heap: the lowest free slot goes first
        self._allocated = [False] * n_slots
        self.prefix = PrefixCache(block_size) if prefix_caching else None
        self.cow_copies = 0  # blocks copied because a write hit a shared one

    @classmethod
    def with_slots(cls, n_layers: int, n_slots: int, n_kv_heads: int, max_len: int, head_dim: int,
                   dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                   block_size: int = 16, forward: object | None = None) -> PagedKVCache:
        """A cache whose slots 0..n_slots-1 are allocated with ``max_len`` positions each: for callers
        that drive a forward directly, without the scheduler (benchmarks, model tests). ``forward``:
        take device and dtype from it, as the engine does (:func:`kv_layout`)."""
        if forward is not None:
            device, dtype = kv_layout(forward)
        cache = cls(n_layers, n_slots, n_kv_heads, max_len, head_dim, dtype, device, block_size=block_size)
        for _ in range(n_slots):
            cache.reserve(cache.allocate(), max_len)
        return cache

    # ---- sequences
    @property
    def used_slots(self) -> int:
        return self.n_slots - len(self._free_seqs)

    @property
    def free_slots(self) -> int:
        return len(self._free_seqs)

    @property
    def free_blocks(self) -> int:
        """Blocks a sequence can take now: empty ones and parked prefix blocks (evictable)."""
        return len(self._empty) + (self.prefix.parked if self.prefix else 0)

    def usage(self) -> float:
        """Share of blocks referenced by a running sequence (vLLM's kv_cache_usage_perc)."""
        return self._in_use / float(self.n_blocks)

    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes

    def blocks(self, slot: int) -> list[int]:
        """The blocks of ``slot``, in position order (a copy)."""
        return list(self._blocks[slot])

    def allocate(self) -> int:
        if not self._free_seqs:
            raise RuntimeError("no free KV-cache slot")
        slot = heapq.heappop(self._free_seqs)
        self._allocated[slot] = True
        self.lengths[slot] = 0
        return slot

    def free(self, slot: int) -> None:
        """Release ``slot`` and its blocks (indexed ones stay parked for prefix reuse)."""
        if not 0 <= slot < self.n_slots or not self._allocated[slot]:
            raise ValueError(f"slot {slot} is not allocated")
        for b in reversed(self._blocks[slot]):  # tail first: eviction takes a chain's tail before its head
            self._unref(b)
        self._blocks[slot] = []
        self.block_tables[slot] = 0
        self.lengths[slot] = 0
        if self.prefix is not None:
            self.prefix.forget_sequence(slot)
        self._allocated[slot] = False
        heapq.heappush(self._free_seqs, slot)

    # ---- blocks
    def _shared(self, b: int) -> bool:
        """A write into ``b`` must copy it: another table points at it, or the prefix index does."""
        return self._refs[b] > 1 or (self.prefix is not None and self.prefix.is_indexed(b))

    def room(self, slot: int, start: int) -> int:
        """Positions from ``start`` that :meth:`make_writable` can give ``slot`` now."""
        blocks = self._blocks[slot]
        copies = sum(1 for b in blocks[start // self.block_size :] if self._shared(b))
        usable = len(blocks) + self.free_blocks - copies
        return max(0, min(usable * self.block_size, self.max_len) - start)

    def make_writable(self, slot: int, start: int, end: int) -> bool:
        """Blocks for positions ``start..end-1`` of ``slot``, exclusively its own: grows the table and
        copies shared blocks in the range (copy-on-write). False, changing nothing, when the pool
        has too few blocks: the scheduler then preempts or waits."""
        if end > self.max_len:
            raise ValueError(f"positions up to {end} exceed max_len={self.max_len}")
        if end <= start:
            return True
        bs = self.block_size
        blocks = self._blocks[slot]
        first, last = start // bs, math.ceil(end / bs)
        shared = [j for j in range(first, min(last, len(blocks))) if self._shared(blocks[j])]
        grow = max(0, last - len(blocks))
        if grow + len(shared) > self.free_blocks:
            return False
        for j in shared:
            old, new = blocks[j], self._take()
            self.k[:, :, new].copy_(self.k[:, :, old])
            self.v[:, :, new].copy_(self.v[:, :, old])
            self._unref(old)
            blocks[j] = new
            self.block_tables[slot, j] = new
            self.cow_copies += 1
        for _ in range(grow):
            b = self._take()
            self.block_tables[slot, len(blocks)] = b
            blocks.append(b)
        return True

    def reserve(self, slot: int, n_tokens: int) -> bool:
        """Blocks for positions ``0..n_tokens-1`` of ``slot`` (see :meth:`make_writable`)."""
        return self.make_writable(slot, self.lengths[slot], n_tokens)

    def _take(self) -> int:
        if self._empty:
            b = heapq.heappop(self._empty)
        elif self.prefix is not None and self.prefix.parked:
            b = self.prefix.evict()
        else:  # callers check free_blocks first
            raise RuntimeError("KV-cache pool exhausted")
        self._refs[b] = 1
        self._in_use += 1
        return b

    def _unref(self, b: int) -> None:
        self._refs[b] -= 1
        if self._refs[b] == 0:
            self._in_use -= 1
            if self.prefix is not None and self.prefix.park(b):
                return
            heapq.heappush(self._empty, b)

    # ---- prefix caching
    def share_prefix(self, slot: int, tokens: list[int] | tuple[int, ...]) -> int:
        """Point the (empty) table of ``slot`` at the cached blocks of the longest indexed prefix of
        ``tokens``; returns how many tokens need no prefill (at least one is always left: its
        logits start the answer; when every block matched, the last token is recomputed into a
        copy of the last block)."""
        if self.prefix is None or not tokens:
            return 0
        if self._blocks[slot]:
            raise ValueError(f"slot {slot} already holds blocks")
        hit = self.prefix.lookup(slot, tokens)
        for j, b in enumerate(hit):
            if self._refs[b] == 0:
                self.prefix.unpark(b)
                self._in_use += 1
            self._refs[b] += 1
            self._blocks[slot].append(b)
            self.block_tables[slot, j] = b
        n = min(len(hit) * self.block_size, len(tokens) - 1)
        self.lengths[slot] = n
        return n

    def commit(self, slot: int, n_cached: int, tokens_of) -> None:
        """``slot`` now holds valid K/V for its first ``n_cached`` tokens: index its newly full blocks
        for reuse. ``tokens_of(n)`` returns the sequence's first n tokens (called only when a block
        filled, so that a decode step does not build a token list per sequence)."""
        self.lengths[slot] = n_cached
        if self.prefix is not None and self.prefix.indexed(slot) < n_cached // self.block_size:
            self.prefix.index(slot, self._blocks[slot], tokens_of(n_cached))

    # ---- access for the PyTorch forwards
    def write(self, layer: int, slots: torch.Tensor, positions: torch.Tensor, k: torch.Tensor,
              v: torch.Tensor) -> None:
        """K/V rows ``[n, n_kv_heads, head_dim]`` into (slot, position) pairs."""
        blk = self._tables_t[slots.cpu(), positions.cpu() // self.block_size].to(self.k.device)
        off = (positions % self.block_size).to(self.k.device)
        self.k[layer][:, blk, off] = k.transpose(0, 1).to(self.k.dtype)
        self.v[layer][:, blk, off] = v.transpose(0, 1).to(self.v.dtype)

    def gather(self, layer: int, slots: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions ``0..length-1`` of ``slots`` as ``[n, n_kv_heads, length, head_dim]`` (a copy;
        positions a sequence has not reached hold whatever its table points at: mask them)."""
        nb = max(1, math.ceil(length / self.block_size))
        blk = self._tables_t[slots.cpu(), :nb].to(self.k.device)  # [n, nb]
        out = []
        for pool in (self.k[layer], self.v[layer]):
            g = pool[:, blk]  # [kvh, n, nb, bs, hd]
            h, n, _, bs, d = g.shape
            out.append(g.transpose(0, 1).reshape(n, h, nb * bs, d)[:, :, :length])
        return out[0], out[1]
