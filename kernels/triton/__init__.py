"""Triton GPU kernels for the quantized LLM (SmolLM2-135M, Llama architecture).

* :mod:`.quant_matmul`: fused dequantize-matmul for GGUF Q4_1 (INT4) and Q8_0 (INT8) weights.
* :mod:`.rmsnorm`: RMSNorm and fused residual-add + RMSNorm.
* :mod:`.rotary`: rotary position embedding (Llama "rotate_half" convention).

Each module also has a plain-PyTorch ``*_reference`` that defines what the kernel must compute.

CPU: the kernels run on CPU tensors only in the Triton interpreter, which needs
``TRITON_INTERPRET=1`` in the environment *before* these modules are first imported
(``triton.jit`` reads the variable when it decorates a kernel). The wrappers raise RuntimeError
for CPU tensors otherwise. The interpreter is for correctness tests; speed only counts on a GPU.

Why lazy exports: ``import kernels.triton`` imports neither Triton nor the kernels (so
:func:`triton_available` works without Triton and nothing is compiled at import); the first access
to an exported name imports its module.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "int4_matmul": "quant_matmul",
    "int8_matmul": "quant_matmul",
    "int4_matmul_reference": "quant_matmul",
    "int8_matmul_reference": "quant_matmul",
    "quantize_int4": "quant_matmul",
    "quantize_int8": "quant_matmul",
    "dequantize_int4": "quant_matmul",
    "dequantize_int8": "quant_matmul",
    "LaunchConfig": "quant_matmul",
    "rms_norm": "rmsnorm",
    "rms_norm_reference": "rmsnorm",
    "add_rms_norm": "rmsnorm",
    "add_rms_norm_reference": "rmsnorm",
    "apply_rotary": "rotary",
    "apply_rotary_reference": "rotary",
    "rotary_cos_sin_cache": "rotary",
}

__all__ = ["triton_available", *_EXPORTS]


def triton_available() -> bool:
    """True if ``import triton`` succeeds (it can also fail with errors other than ImportError)."""
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    return True


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # Not cached in globals(): a test that reloads a module (to switch the interpreter on or off)
    # must not leave stale kernels behind here.
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
