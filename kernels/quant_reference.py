"""Plain-PyTorch reference for weight-only quantized matmul (the formats of GGUF Q4_1 / Q8_0).

Every compiled quantized kernel (``kernels/cpp/llm_step.cpp``, ``kernels/triton``) is tested
against these functions; they are also the slow-but-obvious fallback.
"""

from __future__ import annotations

import torch

GROUP = 32


def _check_weight(w: torch.Tensor) -> None:
    if w.dim() != 2 or w.shape[1] % GROUP != 0:
        raise ValueError(f"weight must be [N, K] with K % {GROUP} == 0, got {tuple(w.shape)}")


def quantize_int8(w: torch.Tensor):
    """Symmetric int8 per group of 32 inputs (Q8_0): scale = absmax / 127."""
    from server.llm.gguf_weights import Int8Weight

    _check_weight(w)
    n, k = w.shape
    g = w.float().reshape(n, k // GROUP, GROUP)
    scales = g.abs().amax(dim=-1) / 127.0
    inv = torch.where(scales > 0, 1.0 / scales, torch.zeros_like(scales))
    q = torch.round(g * inv[..., None]).clamp(-127, 127).to(torch.int8)
    return Int8Weight(q.reshape(n, k).contiguous(), scales.contiguous())


def quantize_int4(w: torch.Tensor):
    """Asymmetric 4-bit per group of 32 (Q4_1): scale = (max - min) / 15, value = q * scale + min."""
    from server.llm.gguf_weights import Int4Weight

    _check_weight(w)
    n, k = w.shape
    g = w.float().reshape(n, k // GROUP, GROUP)
    mn = g.amin(dim=-1)
    mx = g.amax(dim=-1)
    scales = (mx - mn) / 15.0
    inv = torch.where(scales > 0, 1.0 / scales, torch.zeros_like(scales))
    q = torch.round((g - mn[..., None]) * inv[..., None]).clamp(0, 15).to(torch.uint8)
    packed = q[..., : GROUP // 2] | (q[..., GROUP // 2 :] << 4)
    return Int4Weight(packed.reshape(n, k // 2).contiguous(), scales.contiguous(), mn.contiguous())


def quant_matmul_reference(x: torch.Tensor, w) -> torch.Tensor:
    """y = x @ dequantize(w)^T in float32."""
    return x.float() @ w.dequantize().T
