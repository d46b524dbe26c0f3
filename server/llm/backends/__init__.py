"""Forward-step backends behind one signature: ``forward(batch, cache) -> logits``.

Chosen by ``llm.backend`` in config (docs/design/llm.md has the measurements behind the default):

* ``cpu-int4`` — our C++ step (kernels/cpp/llm_step.cpp): the GGUF's Q4_1 weights as they are,
  int8 activations, AVX-512 VNNI dot products, the whole step in one native call.
* ``torch-fp32`` — the PyTorch forward (server/llm/llama.py) on dequantized weights: the reference.
* ``triton`` — the PyTorch forward with Triton dequantize-matmul kernels (GPU; TRITON_INTERPRET=1
  runs them on the CPU, for tests only).
* ``tensorrt`` — needs ``tensorrt`` importable; see server/llm/backends/tensorrt.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from server.llm.errors import BackendUnavailableError
from server.llm.gguf_weights import LlamaWeights
from server.llm.kv_cache import PagedKVCache
from server.llm.llama import LlamaModel, StepBatch

Forward = Callable[[StepBatch, PagedKVCache], torch.Tensor]


def fp32_linear(w):
    W = w.dequantize()
    return lambda x: F.linear(x, W)


def build_forward(
    name: str,
    weights: LlamaWeights,
    num_threads: int = 2,
    activation_precision: str | None = None,
    config=None,
) -> tuple[Forward, str]:
    """activation_precision: cpu-int4 only, ``"int8x2"`` or ``"int8"`` (None: the kernel's default,
    int8x2); see ``llm.activation_precision`` in server/config.py.

    config: the engine's ``LLMConfig``; a backend that cannot serve one of its settings refuses it
    here, at engine start (tensorrt: ``validate_config``), instead of failing the first request."""
    from server.llm.gemma3 import Gemma3Weights

    if isinstance(weights, Gemma3Weights):
        return _gemma3_forward(name, weights, num_threads, activation_precision)
    if name == "torch-fp32":
        return decode_step_forward(LlamaModel(weights, fp32_linear), config), name
    if name == "cpu-int4":
        from kernels import llm_step
        from server.llm.backends.cpu_int4 import CppLlamaStep

        if not llm_step.available():
            raise BackendUnavailableError("the C++ step kernel is not built: run `make build`")
        llm_step.set_num_threads(num_threads)
        if activation_precision is None:
            return CppLlamaStep(weights).forward, name
        return CppLlamaStep(weights, activations=activation_precision).forward, name
    if name == "triton":
        from server.llm.backends.triton import triton_model

        return decode_step_forward(triton_model(weights), config), name
    if name == "tensorrt":
        from server.llm.backends.tensorrt import tensorrt_forward

        return tensorrt_forward(weights, config=config), name
    raise BackendUnavailableError(f"unknown backend {name!r}")


def decode_step_forward(model: LlamaModel, config=None) -> Forward:
    """``model.forward``, or the static decode step in front of it as ``llm.decode_step`` asks
    (server/llm/static_step.py): ``static`` eager, ``compiled`` (torch.compile; reduce-overhead,
    i.e. CUDA graphs, on a GPU), ``cuda-graph`` (captured without compiling)."""
    mode = getattr(config, "decode_step", "eager") if config is not None else "eager"
    if mode == "eager":
        return model.forward
    from server.llm.static_step import StaticDecodeForward

    compile_mode = {"static": None, "cuda-graph": "cuda-graph",
                    "compiled": "reduce-overhead" if model.device.type == "cuda" else "default"}[mode]
    return StaticDecodeForward(model, compile_mode, max_batch=config.max_num_seqs).forward


def _gemma3_forward(name: str, weights, num_threads: int, activation_precision: str | None) -> tuple[Forward, str]:
    """Gemma 3 runs the PyTorch forward (server/llm/gemma3.py) with fp32 linears (``torch-fp32``) or
    the C++ whole step with Gemma's extras (``cpu-int4``: one native call per step, as for Llama)."""
    from server.llm.gemma3 import Gemma3Model

    if name == "torch-fp32":
        return Gemma3Model(weights, fp32_linear).forward, name
    if name == "cpu-int4":
        from kernels import llm_step
        from server.llm.backends.cpu_int4 import CppGemma3Step

        if not llm_step.available():
            raise BackendUnavailableError("the C++ step kernel is not built: run `make build`")
        llm_step.set_num_threads(num_threads)
        return CppGemma3Step(weights, activations=activation_precision or "int8x2").forward, name
    raise BackendUnavailableError(f"backend {name!r} does not run Gemma 3 yet: use cpu-int4 or torch-fp32")
