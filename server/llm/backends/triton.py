"""GPU backend: the PyTorch forward with our Triton kernels for the quantized matmuls, RMSNorm
and rotary embedding (kernels/triton).

On a CUDA machine it runs on the GPU in fp16 with the weights in their GGUF formats (Q4_1 layers,
Q8_0 head), dequantized inside the matmul kernels. Without CUDA it only runs under
``TRITON_INTERPRET=1`` on the CPU, which is for correctness tests, not for speed (fp32 there by
default; ``dtype=torch.float16`` runs the GPU's activation dtype in the interpreter, which is how the
engine's fp16 plumbing — KV cache, attention — is tested without a GPU).

The engine sizes its KV cache from the forward's owner: ``LlamaModel.device`` and ``.dtype``
(the cache must hold what the model writes into it; index_put and SDPA refuse mixed dtypes).
"""

from __future__ import annotations

import os

import torch

from kernels.quant_reference import Int4Weight
from server.llm.gguf_weights import LlamaWeights
from server.llm.llama import LlamaModel


class TritonUnavailableError(RuntimeError):
    pass


def triton_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get("TRITON_INTERPRET") == "1":
        return torch.device("cpu")
    raise TritonUnavailableError(
        "backend 'triton' needs a CUDA GPU (or TRITON_INTERPRET=1 on the CPU, for tests only)"
    )


ACTIVATION_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


# Our Triton wrappers as opaque PyTorch custom ops: torch.compile (fullgraph) keeps each as one node
# instead of tracing into the wrapper's Python (launch checks, config choice; under the interpreter
# dynamo stops at ``UntypedStorage.data_ptr``), and CUDA graphs capture their launches like any op's.
# The kernels are imported inside, so that importing this module imports no triton.
@torch.library.custom_op("stackserve::int4_linear", mutates_args=())
def int4_linear(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor) -> torch.Tensor:
    from kernels.triton import int4_matmul

    return int4_matmul(x, qweight, scales, mins)


@int4_linear.register_fake
def _(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor) -> torch.Tensor:
    return x.new_empty((x.shape[0], qweight.shape[0]))


@torch.library.custom_op("stackserve::int8_linear", mutates_args=())
def int8_linear(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    from kernels.triton import int8_matmul

    return int8_matmul(x, qweight, scales)


@int8_linear.register_fake
def _(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    return x.new_empty((x.shape[0], qweight.shape[0]))


@torch.library.custom_op("stackserve::rms_norm", mutates_args=())
def triton_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    from kernels.triton import rms_norm

    return rms_norm(x, weight, eps)


@triton_rms_norm.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("stackserve::rotary", mutates_args=())
def triton_rotary(qk: torch.Tensor, positions: torch.Tensor, cos_sin_cache: torch.Tensor, theta: float) -> torch.Tensor:
    from kernels.triton import apply_rotary

    return apply_rotary(qk.contiguous(), positions, theta, cos_sin_cache=cos_sin_cache)


@triton_rotary.register_fake
def _(qk: torch.Tensor, positions: torch.Tensor, cos_sin_cache: torch.Tensor, theta: float) -> torch.Tensor:
    return torch.empty(qk.shape, dtype=qk.dtype, device=qk.device)


def triton_model(
    weights: LlamaWeights, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> LlamaModel:
    """dtype: activations and KV cache; default fp16 on a GPU, fp32 in the CPU interpreter."""
    try:
        from kernels.triton import rotary_cos_sin_cache
    except ImportError as exc:  # pragma: no cover - triton is a dev/GPU dependency
        raise TritonUnavailableError(f"triton is not installed: {exc}") from exc
    dev = device or triton_device()
    if dtype is None:
        dtype = torch.float16 if dev.type == "cuda" else torch.float32
    if dtype not in ACTIVATION_DTYPES:
        raise ValueError(f"backend 'triton' runs float16, bfloat16 or float32 activations, not {dtype}")
    cfg = weights.config

    def make_linear(w):
        if isinstance(w, Int4Weight):
            q, s, m = w.qweight.to(dev), w.scales.to(dev), w.mins.to(dev)
            return lambda x: int4_linear(x, q, s, m)
        q, s = w.qweight.to(dev), w.scales.to(dev)
        return lambda x: int8_linear(x, q, s)

    cache = rotary_cos_sin_cache(cfg.context_length, cfg.head_dim, cfg.rope_theta, device=dev)

    def rotary(qk: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return triton_rotary(qk, positions, cache, cfg.rope_theta)

    return LlamaModel(weights, make_linear, dtype=dtype, device=dev, rms_norm=triton_rms_norm, rotary=rotary)


def triton_forward(weights: LlamaWeights, dtype: torch.dtype | None = None):
    return triton_model(weights, dtype=dtype).forward
