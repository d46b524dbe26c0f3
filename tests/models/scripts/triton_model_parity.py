"""Run the Triton backend's forward under TRITON_INTERPRET=1 on a truncated model; print JSON.

A subprocess, because the interpreter flag must be set before triton is first imported.
"""

import json
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"

import torch

from server.llm.backends import fp32_linear
from server.llm.backends.triton import triton_model
from server.llm.gguf_weights import load_weights, truncate_weights
from server.llm.kv_cache import PagedKVCache
from server.llm.llama import LlamaModel, PrefillSegment, StepBatch

n_layers = int(sys.argv[1]) if len(sys.argv) > 1 else 2
full = load_weights()
cfg = full.config
w = truncate_weights(full, n_layers, 2048)  # the interpreter pays per output column: keep the head small
ids = [1, 504, 1575, 282]


def run(model):
    cache = PagedKVCache.with_slots(n_layers, 2, cfg.n_kv_heads, 32, cfg.head_dim)
    n = len(ids)
    pre = StepBatch(torch.tensor(ids), torch.arange(n), torch.empty(0, dtype=torch.long), [],
                    [PrefillSegment(0, 0, n, 0)], torch.tensor([n - 1]))
    a = model.forward(pre, cache)
    dec = StepBatch(torch.tensor([int(a[0].argmax())]), torch.tensor([n]), torch.tensor([0]), [n + 1], [],
                    torch.tensor([0]))
    b = model.forward(dec, cache)
    return torch.cat([a, b])


ref = run(LlamaModel(w, fp32_linear))
tri = run(triton_model(w, torch.device("cpu")))
print(json.dumps({
    "max_abs": float((ref - tri).abs().max()),
    "argmax_equal": bool(torch.equal(ref.argmax(-1), tri.argmax(-1))),
    "scale": float(ref.abs().max()),
}))
