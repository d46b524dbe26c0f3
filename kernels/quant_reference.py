"""Plain-PyTorch reference for weight-only quantized matmul (the formats of GGUF Q4_1 / Q8_0).

The one place the formats are defined and computed: the weight containers ``Int4Weight`` and
``Int8Weight`` live here, with the kernels that consume them (``server/llm/gguf_weights.py``
fills them from a GGUF); they and the Triton module dequantize through these functions, and every
compiled kernel (``kernels/cpp/llm_step.cpp``, ``kernels/triton``) is tested against them.
Rounding is ties-away-from-zero, as ggml's quantizers do, so re-quantizing a GGUF block is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GROUP = 32


@dataclass(frozen=True, slots=True)
class Int4Weight:
    qweight: torch.Tensor  # uint8 [N, K/2]
    scales: torch.Tensor  # float32 [N, K/32]
    mins: torch.Tensor  # float32 [N, K/32]

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.qweight.shape[0]), int(self.qweight.shape[1]) * 2

    def dequantize(self) -> torch.Tensor:
        return dequantize_int4_tensors(self.qweight, self.scales, self.mins)


@dataclass(frozen=True, slots=True)
class Int8Weight:
    qweight: torch.Tensor  # int8 [N, K]
    scales: torch.Tensor  # float32 [N, K/32]

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.qweight.shape[0]), int(self.qweight.shape[1])

    def dequantize(self) -> torch.Tensor:
        return dequantize_int8_tensors(self.qweight, self.scales)


def _check_weight(w: torch.Tensor) -> tuple[int, int]:
    if w.dim() != 2 or w.shape[1] % GROUP != 0:
        raise ValueError(f"weight must be [N, K] with K % {GROUP} == 0, got {tuple(w.shape)}")
    return int(w.shape[0]), int(w.shape[1])


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """Round like C's ``roundf`` (ties away from zero)."""
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)


def quantize_int8_tensors(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q8_0: per group of 32, scale = absmax / 127, q = round(w / scale); (qweight int8 [N, K], scales)."""
    n, k = _check_weight(w)
    g = w.detach().to(torch.float32).reshape(n, k // GROUP, GROUP)
    scale = g.abs().amax(dim=-1) / 127.0
    safe = torch.where(scale > 0, scale, 1.0)
    q = round_half_away(g / safe[..., None]).clamp(-127, 127)
    q = torch.where(scale[..., None] > 0, q, 0.0).to(torch.int8)
    return q.reshape(n, k).contiguous(), scale.contiguous()


def quantize_int4_tensors(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q4_1: per group of 32, scale = (max - min) / 15, value = q * scale + min; (qweight uint8 [N, K/2],
    scales, mins). Byte i of a group holds element i in its low nibble and element 16 + i in its high one."""
    n, k = _check_weight(w)
    g = w.detach().to(torch.float32).reshape(n, k // GROUP, GROUP)
    lo = g.amin(dim=-1)
    scale = (g.amax(dim=-1) - lo) / 15.0
    inv = torch.where(scale > 0, 1.0 / torch.where(scale > 0, scale, 1.0), 0.0)
    q = round_half_away((g - lo[..., None]) * inv[..., None]).clamp(0, 15).to(torch.uint8)
    packed = q[..., : GROUP // 2] | (q[..., GROUP // 2 :] << 4)
    return packed.reshape(n, k // 2).contiguous(), scale.contiguous(), lo.contiguous()


def dequantize_int4_tensors(qweight: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor) -> torch.Tensor:
    n, k = int(qweight.shape[0]), int(qweight.shape[1]) * 2
    b = qweight.reshape(n, k // GROUP, GROUP // 2)
    q = torch.cat([b & 0xF, b >> 4], dim=-1).to(torch.float32)
    return (q * scales[..., None] + mins[..., None]).reshape(n, k)


def dequantize_int8_tensors(qweight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    n, k = int(qweight.shape[0]), int(qweight.shape[1])
    return (qweight.reshape(n, k // GROUP, GROUP).to(torch.float32) * scales[..., None]).reshape(n, k)


def quantize_int8(w: torch.Tensor):
    """``quantize_int8_tensors`` as an ``Int8Weight``."""
    return Int8Weight(*quantize_int8_tensors(w))


def quantize_int4(w: torch.Tensor):
    """``quantize_int4_tensors`` as an ``Int4Weight``."""
    return Int4Weight(*quantize_int4_tensors(w))


def quant_matmul_reference(x: torch.Tensor, w) -> torch.Tensor:
    """y = x @ dequantize(w)^T in float32."""
    return x.float() @ w.dequantize().T
