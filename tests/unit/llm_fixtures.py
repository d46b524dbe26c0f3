"""Shared, loaded-once LLM objects for the unit tests (loading the GGUF takes seconds)."""

from __future__ import annotations

import functools

import pytest
import torch

from server.config import LLMConfig
from server.llm.gguf_weights import LlamaWeights, load_weights, open_reader
from server.llm.tokenizer import GGUFTokenizer

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "Once upon a time, in a small village by the sea,",
]


@functools.cache
def weights() -> LlamaWeights:
    return load_weights()


@functools.cache
def tokenizer() -> GGUFTokenizer:
    return GGUFTokenizer(open_reader(str(weights().path)))


@functools.cache
def hf_model():
    """transformers' own Llama on the same GGUF: the reference, never used at run time."""
    transformers = pytest.importorskip("transformers")
    path = weights().path
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    )
    return model.eval()


def engine_config(**kw) -> LLMConfig:
    base = dict(backend="torch-fp32", max_num_seqs=4, max_model_len=256, max_num_batched_tokens=32, max_waiting=8)
    base.update(kw)
    return LLMConfig(**base)
