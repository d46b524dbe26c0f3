"""Pre-allocated KV cache in fixed slots, kept compact so decode attention reads views, not copies.

Design (see docs/design/llm.md): one slot per running sequence, ``max_model_len`` positions per
slot, allocated once at start so a request can never fail half-way for lack of memory. Running
slots are kept in ``0..n-1``: when a sequence leaves, the last slot's rows move into the hole
(one copy of that sequence's used positions). Batched decode attention then runs on
``cache[:, :n]`` — a strided view — instead of gathering every sequence's history each step.
"""

from __future__ import annotations

import numpy as np
import torch


def _zeros(shape: tuple[int, ...], dtype: torch.dtype, device: str | torch.device) -> torch.Tensor:
    """Zeros that take memory only where written: on the CPU, numpy's zeroed allocation is backed by
    the kernel's zero pages (calloc → mmap), which become resident when a position is first written,
    where ``torch.zeros`` writes every byte at once (16 slots x 1,024 positions: 737 MB resident at
    start for an idle server)."""
    if torch.device(device).type == "cpu" and dtype == torch.float32:
        return torch.from_numpy(np.zeros(shape, dtype=np.float32))
    return torch.zeros(shape, dtype=dtype, device=device)


class SlotKVCache:
    def __init__(
        self,
        n_layers: int,
        n_slots: int,
        n_kv_heads: int,
        max_len: int,
        head_dim: int,
        dtype=torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        shape = (n_layers, n_slots, n_kv_heads, max_len, head_dim)
        self.k = _zeros(shape, dtype, device)
        self.v = _zeros(shape, dtype, device)
        self.n_slots = n_slots
        self.max_len = max_len
        self.lengths = [0] * n_slots  # positions written per slot
        self._used = 0  # slots 0.._used-1 are taken

    @property
    def used_slots(self) -> int:
        return self._used

    @property
    def free_slots(self) -> int:
        return self.n_slots - self._used

    def usage(self) -> float:
        """Share of all cache positions holding a live token (vLLM's gpu_cache_usage_perc)."""
        return sum(self.lengths[: self._used]) / float(self.n_slots * self.max_len)

    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes

    def allocate(self) -> int:
        if self._used >= self.n_slots:
            raise RuntimeError("no free KV-cache slot")
        slot = self._used
        self._used += 1
        self.lengths[slot] = 0
        return slot

    def free(self, slot: int) -> int | None:
        """Release ``slot``; returns the slot index that moved into it (or None)."""
        if not 0 <= slot < self._used:
            raise ValueError(f"slot {slot} is not allocated")
        last = self._used - 1
        moved = None
        if slot != last:
            n = self.lengths[last]
            if n:
                self.k[:, slot, :, :n].copy_(self.k[:, last, :, :n])
                self.v[:, slot, :, :n].copy_(self.v[:, last, :, :n])
            self.lengths[slot] = n
            moved = last
        self.lengths[last] = 0
        self._used = last
        return moved
