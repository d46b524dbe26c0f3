"""The paged KV cache's bookkeeping under random operations: reference counts match the tables,
a block is never both free and referenced, and no sequence's K/V is overwritten by another's."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from server.llm.kv_cache import PagedKVCache
from tests.support.hypothesis_profiles import examples

BS = 4
OPS = st.lists(
    st.tuples(st.sampled_from(["start", "grow", "finish"]), st.integers(0, 5), st.integers(1, 12)),
    min_size=1, max_size=40,
)


def _check(cache: PagedKVCache, live: dict[int, tuple[list[int], float, list[float]]]) -> None:
    refs = [0] * cache.n_blocks
    for slot in live:
        for b in cache.blocks(slot):
            refs[b] += 1
        assert cache.block_tables[slot, : len(cache.blocks(slot))].tolist() == cache.blocks(slot)
    assert refs == cache._refs
    empty = set(cache._empty)
    assert not empty & {b for b, r in enumerate(refs) if r}, "a referenced block is on the empty list"
    parked = set(cache.prefix._parked) if cache.prefix else set()
    assert not parked & empty and not parked & {b for b, r in enumerate(refs) if r}
    assert len(empty) + len(parked) + sum(1 for r in refs if r) == cache.n_blocks, "a block went missing"
    assert cache.usage() == sum(1 for r in refs if r) / cache.n_blocks
    for slot, (tokens, _value, seen) in live.items():  # what each sequence wrote or shared is intact
        if tokens:
            k, _ = cache.gather(0, torch.tensor([slot]), len(tokens))
            assert k[0, 0, :, 0].tolist() == seen, f"slot {slot} lost its K/V"


@settings(max_examples=examples(60), deadline=None)
@given(OPS, st.booleans())
def test_random_operations_keep_the_pool_consistent(ops, prefix):
    cache = PagedKVCache(1, 4, 1, 32, 1, block_size=BS, n_blocks=14, prefix_caching=prefix)
    live: dict[int, tuple[list[int], float, list[float]]] = {}
    for op, which, n in ops:
        if op == "start" and cache.free_slots:
            slot = cache.allocate()
            tokens = [which % 2] * n  # few distinct prompts: prefixes repeat, blocks get shared
            shared = cache.share_prefix(slot, tokens)
            if not cache.make_writable(slot, shared, n):
                cache.free(slot)
                continue
            seen = cache.gather(0, torch.tensor([slot]), shared)[0][0, 0, :, 0].tolist() if shared else []
            live[slot] = (tokens, float(which % 2), seen + _write(cache, slot, shared, n, tokens, shared))
        elif op == "grow" and live:
            slot = sorted(live)[which % len(live)]
            tokens, value, seen = live[slot]
            end = min(len(tokens) + n, cache.max_len)
            if cache.make_writable(slot, len(tokens), end):
                start = len(tokens)
                tokens = tokens + [int(value)] * (end - start)
                live[slot] = (tokens, value, seen + _write(cache, slot, start, end, tokens, 0))
        elif op == "finish" and live:
            slot = sorted(live)[which % len(live)]
            cache.free(slot)
            del live[slot]
        _check(cache, live)
    for slot in list(live):
        cache.free(slot)
    assert cache.usage() == 0 and cache.free_blocks == cache.n_blocks


def _write(cache: PagedKVCache, slot: int, start: int, end: int, tokens: list[int], shared: int) -> list[float]:
    """What a forward does: K of each new position (its token's value), committed; returns the
    values written. A prompt that matched whole is recomputed from its last token: that value is
    marked (+0.5; identical in a real model) to show it lands in a copy, not the shared block."""
    if end <= start:
        return []
    vals = [float(t) for t in tokens[start:end]]
    if shared == end - 1:
        vals[0] += 0.5
    val = torch.tensor(vals)[:, None, None]
    cache.write(0, torch.full((end - start,), slot), torch.arange(start, end), val, val)
    cache.commit(slot, end, lambda m: tokens[:m])
    return vals
