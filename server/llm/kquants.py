"""GGUF's other block formats (Q5_0, Q4_K, Q6_K) in the two layouts our kernels read.

Why convert instead of a kernel per format: our matmul kernels (C++ VNNI/AMX, Triton, the PyTorch
reference) work on blocks of 32 inputs with one scale (Q8_0) or a scale and a min (Q4_1). Most of
GGUF's formats are those blocks in disguise, so they convert exactly:

* Q5_0 (32 values, fp16 scale d, 5-bit q): value = d (q - 16), q - 16 in [-16, 15] fits int8, so
  it is a Q8_0 block with the same scale: exact.
* Q4_K (a 256-value super-block: fp16 d and dmin, eight 32-value sub-blocks with 6-bit scale and
  min, 4-bit q): value = (d sc) q - (dmin m), i.e. a Q4_1 block with scale d sc and min -(dmin m),
  both exact in float32 (an 11-bit mantissa times a 6-bit integer): exact.
* Q6_K (256 values: fp16 d, sixteen 16-value sub-blocks with int8 scales, 6-bit q): a 32-value
  block holds two sub-blocks with different scales, which one int8 scale cannot express exactly.
  It is re-quantized to Q8_0 from its exact values: the error is at most absmax / 254 per value,
  an eighth of Q6_K's own step at the block's larger scale (measured in the tests).

Each converter is checked against ``gguf.quants.dequantize`` (the reference decoder): equal bits
for the exact ones, the stated bound for Q6_K.
"""

from __future__ import annotations

import numpy as np
import torch

from kernels.quant_reference import Int4Weight, Int8Weight, quantize_int8

QK_K = 256


def _f16(b: np.ndarray) -> np.ndarray:
    """Little-endian fp16 from the last axis' 2 bytes, as float32."""
    return np.ascontiguousarray(b).view(np.float16)[..., 0].astype(np.float32)


def q5_0_to_int8(data: np.ndarray) -> Int8Weight:
    """Q5_0 rows ([N, K/32 * 22] bytes: fp16 d, 4 bytes of high bits, 16 bytes of low nibbles)."""
    n, row_bytes = data.shape
    blocks = data.reshape(n, row_bytes // 22, 22)
    d = _f16(blocks[..., 0:2])
    qh = np.ascontiguousarray(blocks[..., 2:6]).view(np.uint32)[..., 0]  # bit j: high bit of value j
    ql = blocks[..., 6:22]
    low = np.concatenate([ql & 0x0F, ql >> 4], axis=-1)  # values 0..15 then 16..31
    high = (qh[..., None] >> np.arange(32, dtype=np.uint32)) & 1
    q = (low.astype(np.int16) | (high.astype(np.int16) << 4)) - 16
    return Int8Weight(torch.from_numpy(q.astype(np.int8).reshape(n, -1)), torch.from_numpy(d))


def _k_scale_min(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The eight 6-bit (scale, min) pairs of a Q4_K super-block from its 12 packed bytes."""
    s = scales.reshape(*scales.shape[:-1], 3, 4)
    d, m, md = s[..., 0, :], s[..., 1, :], s[..., 2, :]
    sc = np.concatenate([d & 0x3F, (md & 0x0F) | ((d >> 2) & 0x30)], axis=-1)
    mn = np.concatenate([m & 0x3F, (md >> 4) | ((m >> 2) & 0x30)], axis=-1)
    return sc, mn


def q4_k_to_int4(data: np.ndarray) -> Int4Weight:
    """Q4_K rows ([N, K/256 * 144] bytes: fp16 d, fp16 dmin, 12 scale bytes, 128 nibble bytes)."""
    n, row_bytes = data.shape
    sb = data.reshape(n, row_bytes // 144, 144)
    d, dmin = _f16(sb[..., 0:2]), _f16(sb[..., 2:4])
    sc, mn = _k_scale_min(sb[..., 4:16])
    with np.errstate(invalid="ignore", over="ignore"):  # a NaN/inf fp16 scale gives NaN/inf values, as in ggml
        scales = d[..., None] * sc.astype(np.float32)  # [N, S, 8]
        mins = -(dmin[..., None] * mn.astype(np.float32))
    qs = sb[..., 16:].reshape(n, -1, 4, 32)  # 4 chunks of 32 bytes: sub-blocks 2j (low) and 2j+1 (high)
    q = np.stack([qs & 0x0F, qs >> 4], axis=-2).reshape(n, -1, 8, 32)  # [N, S, sub-block, value]
    packed = q[..., :16] | (q[..., 16:] << 4)  # ours: byte i = value i (low) | value 16 + i (high)
    return Int4Weight(torch.from_numpy(np.ascontiguousarray(packed, dtype=np.uint8).reshape(n, -1)),
                      torch.from_numpy(scales.reshape(n, -1).copy()), torch.from_numpy(mins.reshape(n, -1).copy()))


def q6_k_values(data: np.ndarray) -> np.ndarray:
    """The exact float32 values of Q6_K rows ([N, K/256 * 210] bytes: 128 low-nibble bytes, 64
    high-bit bytes, 16 int8 scales, fp16 d)."""
    n, row_bytes = data.shape
    sb = data.reshape(n, row_bytes // 210, 210)
    ql, qh = sb[..., :128], sb[..., 128:192]
    scales = np.ascontiguousarray(sb[..., 192:208]).view(np.int8).astype(np.float32)
    d = _f16(sb[..., 208:210])
    # two halves of 128 values; in each, ql's 64 bytes give low nibbles of values 0..63 (low) and
    # 64..127 (high), qh's 32 bytes give 2 high bits for values 0..31, 32..63, 64..95, 96..127
    ql = ql.reshape(n, -1, 2, 64)
    qh = qh.reshape(n, -1, 2, 32)
    low = np.concatenate([ql & 0x0F, ql >> 4], axis=-1)  # [N, S, half, 128]
    high = np.concatenate([(qh >> s) & 3 for s in (0, 2, 4, 6)], axis=-1)
    q = (low.astype(np.int16) | (high.astype(np.int16) << 4)) - 32
    q = q.reshape(n, -1, 16, 16).astype(np.float32)  # sub-blocks of 16
    with np.errstate(invalid="ignore", over="ignore"):
        return (d[..., None, None] * scales[..., None] * q).reshape(n, -1)


def q6_k_to_int8(data: np.ndarray) -> Int8Weight:
    return quantize_int8(torch.from_numpy(q6_k_values(data)))


def convert(kind: str, data: np.ndarray) -> Int4Weight | Int8Weight | None:
    """The block converter for GGUF type ``kind`` (None: not one of these)."""
    if kind == "Q5_0":
        return q5_0_to_int8(data)
    if kind == "Q4_K":
        return q4_k_to_int4(data)
    if kind == "Q6_K":
        return q6_k_to_int8(data)
    return None
