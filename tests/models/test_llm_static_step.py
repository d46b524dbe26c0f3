"""The static decode step (server/llm/static_step.py) against the eager forward, on a truncated real
model (2 layers, 2,048-token head: torch.compile on two cores takes seconds per layer).

* compiled with ``torch.compile(fullgraph=True)``: no graph break, logits and the K/V it writes
  equal the eager forward's, and a later step in the same bucket with other positions, slots and
  tokens reuses the graph (no recompilation: nothing of the step's values is baked into it);
* inside the engine, greedy output of overlapping requests equals the eager engine's.
"""

from __future__ import annotations

import asyncio

import pytest
import torch
import torch._dynamo

from server.llm.backends import fp32_linear
from server.llm.engine import LLMEngine
from server.llm.gguf_weights import LlamaWeights, truncate_weights
from server.llm.kv_cache import PagedKVCache
from server.llm.llama import LlamaModel, PrefillSegment, StepBatch
from server.llm.params import SamplingParams
from server.llm.static_step import MIN_CTX_BLOCKS, StaticDecodeForward, StaticDecodeStep, next_bucket
from tests.support.llm_fixtures import engine_config, weights

PROMPTS = [[1, 504, 1575, 282], [1, 33, 44, 55, 66, 77, 88], [1, 1000, 2000, 7, 9, 11, 13, 15, 17, 19, 21]]


@pytest.fixture(scope="module")
def small() -> LlamaWeights:
    return truncate_weights(weights(), 2, 2048)


def prefilled(model: LlamaModel, n_slots: int = 4) -> PagedKVCache:
    cfg = model.config
    cache = PagedKVCache.with_slots(cfg.n_layers, n_slots, cfg.n_kv_heads, 128, cfg.head_dim)
    for slot, ids in enumerate(PROMPTS):
        n = len(ids)
        model.forward(StepBatch(torch.tensor(ids), torch.arange(n), torch.empty(0, dtype=torch.long), [],
                                [PrefillSegment(slot, 0, n, 0)], torch.tensor([n - 1])), cache)
    return cache


def decode_batch(tokens: list[int], slots: list[int]) -> StepBatch:
    positions = [len(PROMPTS[s]) for s in slots]
    return StepBatch(torch.tensor(tokens), torch.tensor(positions), torch.tensor(slots), [p + 1 for p in positions],
                     [], torch.arange(len(slots)))


def test_buckets():
    assert [next_bucket(n, 64) for n in (0, 1, 2, 3, 5, 16, 17, 64)] == [1, 1, 2, 4, 8, 16, 32, 64]
    assert next_bucket(40, 48) == 48  # the cap is the last bucket
    with pytest.raises(ValueError):
        next_bucket(65, 64)


def test_compiled_step_matches_eager_forward_without_graph_breaks(small):
    model = LlamaModel(small, fp32_linear)
    ref_cache, cache = prefilled(model), prefilled(model)
    step = StaticDecodeStep(model, cache, max_batch=4, compile_mode="default")
    torch._dynamo.reset()
    first = decode_batch([5, 9, 1999], [0, 1, 2])  # 3 rows: bucket 4, one padding row
    want = model.forward(first, ref_cache)
    got = step(first.token_ids, first.positions, first.decode_slots, max(first.decode_lengths)).float()
    assert got.shape == want.shape == (3, 2048)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert torch.equal(got.argmax(-1), want.argmax(-1))
    for layer in range(small.config.n_layers):  # the K/V it wrote for the three rows
        for slot in range(3):
            n = len(PROMPTS[slot]) + 1
            k_want, v_want = ref_cache.gather(layer, torch.tensor([slot]), n)
            k_got, v_got = cache.gather(layer, torch.tensor([slot]), n)
            torch.testing.assert_close(k_got, k_want, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(v_got, v_want, rtol=1e-5, atol=1e-5)
    # same bucket (3 rows -> 4; contexts within MIN_CTX_BLOCKS blocks), other values: the graph is reused
    second = decode_batch([42, 7, 3], [2, 0, 1])
    second.positions += 1
    second.decode_lengths = [p + 1 for p in second.positions.tolist()]
    assert max(second.decode_lengths) <= MIN_CTX_BLOCKS * cache.block_size
    want = model.forward(second, ref_cache)
    with torch._dynamo.config.patch(error_on_recompile=True):
        got = step(second.token_ids, second.positions, second.decode_slots, max(second.decode_lengths)).float()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_engine_with_compiled_static_decode_equals_eager_engine(small):
    """``llm.decode_step: compiled`` on the torch-fp32 backend: three overlapping greedy requests with a
    small step budget (steps mix prompt chunks and decode rows, so the engine switches between the
    eager forward and the compiled static step, in several batch buckets)."""
    params = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
    config = engine_config(max_num_seqs=4, max_model_len=64, max_num_batched_tokens=6, num_threads=2)

    def generate(config) -> tuple[list[list[int]], LLMEngine]:
        eng = LLMEngine(config, weights=small).start()

        async def one(ids: list[int]) -> list[int]:
            return [t async for c in eng.generate(ids, params) for t in c.token_ids]

        async def all_of_them() -> list[list[int]]:
            return await asyncio.gather(*(one(p) for p in PROMPTS))

        try:
            return asyncio.run(all_of_them()), eng
        finally:
            eng.shutdown()

    ref, _ = generate(config)
    got, eng = generate(config.model_copy(update={"decode_step": "compiled"}))
    static = eng.forward.__self__  # llm.decode_step put the static step in front of the eager forward
    assert isinstance(static, StaticDecodeForward) and static.compile_mode == "default"
    assert static.static_steps > 0
    assert len({t for seq in ref for t in seq}) > 3  # varied tokens: a real comparison
    assert got == ref
