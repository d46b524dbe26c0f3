"""Shared, loaded-once LLM objects for the tests (loading the GGUF takes seconds), and the small LLM
configuration and backend every test server and in-process gateway uses."""

from __future__ import annotations

import functools
import os

import pytest
import torch

from server.config import LLMConfig
from server.llm.gguf_weights import LlamaWeights, load_weights, open_reader
from server.llm.tokenizer import GGUFTokenizer
from tests.support import compiled

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


def llm_test_backend() -> str:
    """The LLM backend test servers use: ``STACKSERVE_TEST_LLM_BACKEND`` if set, else the config default
    where it is built here, else ``torch-fp32`` (never under ``CI=true``: a missing C++ step fails there)."""
    chosen = os.environ.get("STACKSERVE_TEST_LLM_BACKEND")
    if chosen:
        return chosen
    default = LLMConfig().backend
    if default == "cpu-int4":
        from kernels import llm_step

        if not llm_step.available():
            if compiled.in_ci():  # CI must test the backend users get, not a silent fallback
                pytest.fail("CI=true: kernels.cpp._llm_step is not built; the server would fall back to torch-fp32")
            return "torch-fp32"
    return default


#: Small (4 KV-cache slots, 512-token context, 2 waiting) so tests stay quick and the queue limit is reachable.
LLM_TEST_CONFIG = {"max_num_seqs": 4, "max_model_len": 512, "max_waiting": 2, "stats_interval_s": 0.25}
