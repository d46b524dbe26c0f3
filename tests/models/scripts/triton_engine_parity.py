"""The whole engine on the Triton backend in fp16/bf16 (TRITON_INTERPRET=1), against the fp32 engine.

Usage: triton_engine_parity.py DTYPE... (float16, bfloat16) — prints one JSON line. A subprocess,
because the interpreter flag must be set before triton is first imported.

The model is a tiny random Llama (2 layers, hidden 64, GQA 4:2 heads, a 512-token head) in the
GGUF's formats (Q4_1 layers, Q8_0 embedding/head): the interpreter runs every kernel program in
Python, so even one layer of the real model costs about a minute per step; what is tested here is
the engine's plumbing of the GPU dtype (KV cache, index_put, SDPA, sampling), which does not depend
on the weights. The real weights' parity is triton_model_parity.py's. The tokenizer is the real
GGUF's (only for detokenizing; every id the tiny model emits is in its vocabulary).

Two requests run together with a small step budget, so steps hold decode rows and prompt chunks and
decode attention reads two slots: the same code as on a CUDA machine.
"""

import asyncio
import json
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"

import torch

from kernels.quant_reference import Int4Weight, Int8Weight, quantize_int4_tensors, quantize_int8_tensors
from server.llm.backends import fp32_linear
from server.llm.backends.triton import triton_model
from server.llm.engine import LLMEngine
from server.llm.gguf_weights import LayerWeights, LlamaConfig, LlamaWeights, default_gguf_path
from server.llm.llama import LlamaModel
from server.llm.params import SamplingParams
from tests.support.llm_fixtures import engine_config

dtypes = sys.argv[1:] or ["float16"]
cfg = LlamaConfig(n_layers=2, hidden=64, ffn=128, n_heads=4, n_kv_heads=2, vocab_size=512, context_length=64,
                  rope_theta=10000.0, rms_eps=1e-5)
gen = torch.Generator().manual_seed(0)


def int4(n: int, k: int, gain: float = 1.0) -> Int4Weight:
    return Int4Weight(*quantize_int4_tensors(gain * torch.randn(n, k, generator=gen) / k**0.5))


def norm() -> torch.Tensor:
    return 1.0 + 0.1 * torch.randn(cfg.hidden, generator=gen)


hd = cfg.head_dim
GAIN = 4.0  # attention and MLP outputs outweigh the token's own embedding: varied, not repeated, tokens
layers = [
    LayerWeights(
        norm(), norm(), int4((cfg.n_heads + 2 * cfg.n_kv_heads) * hd, cfg.hidden),
        int4(cfg.hidden, cfg.n_heads * hd, GAIN), int4(2 * cfg.ffn, cfg.hidden), int4(cfg.hidden, cfg.ffn, GAIN),
    )
    for _ in range(cfg.n_layers)
]
emb = Int8Weight(*quantize_int8_tensors(torch.randn(cfg.vocab_size, cfg.hidden, generator=gen)))
w = LlamaWeights(cfg, emb, layers, norm(), default_gguf_path())
PROMPTS = [[1, 504, 15, 282], [1, 99, 197, 17, 42, 314, 7]]
PARAMS = SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True)
CONFIG = engine_config(max_num_seqs=2, max_model_len=32, max_num_batched_tokens=5, num_threads=1)


def generate(model: LlamaModel) -> tuple[list[list[int]], list[str | None], str]:
    eng = LLMEngine(CONFIG, weights=w, forward=model.forward).start()

    async def one(ids: list[int]) -> list:
        return [c async for c in eng.generate(ids, PARAMS)]

    async def both() -> list[list]:
        return await asyncio.gather(*(one(p) for p in PROMPTS))

    try:
        runs = asyncio.run(both())
    finally:
        eng.shutdown()
    tokens = [[t for c in chunks for t in c.token_ids] for chunks in runs]
    return tokens, [chunks[-1].finish_reason for chunks in runs], str(eng.cache.k.dtype)


ref, ref_finish, _ = generate(LlamaModel(w, fp32_linear))
runs = {}
for name in dtypes:
    tokens, finish, cache_dtype = generate(triton_model(w, torch.device("cpu"), dtype=getattr(torch, name)))
    runs[name] = {"tokens": tokens, "finish": finish, "cache_dtype": cache_dtype}
print(json.dumps({"ref": ref, "ref_finish": ref_finish, "runs": runs}))
