"""Fused dequantize-matmul ``y = x @ W^T`` for weight-only quantized W (GGUF Q4_1 and Q8_0 layouts).

Why fused: LLM decode is bound by reading weights, so the weights stay 4 or 8 bit in GPU memory and
are expanded in registers right before the multiply; a separate dequantize pass would write and
re-read a float copy and lose most of the saving.

Formats (shared with the CPU C++ kernel and the GGUF loader; do not change them). W is [N, K]
(N out features, K in features, K % 32 == 0), quantized in groups of 32 consecutive inputs:

* ``q4_1`` (INT4): ``qweight`` uint8 [N, K//2], ``scales`` and ``mins`` float32 [N, K//32]. Byte
  ``i`` (0..15) of group ``g`` is ``qweight[n, g*16 + i]``; its low nibble is element ``g*32 + i``,
  its high nibble element ``g*32 + 16 + i``; value = ``q * scales[n, g] + mins[n, g]``.
* ``q8_0`` (INT8): ``qweight`` int8 [N, K], ``scales`` float32 [N, K//32]; value = ``q * scale``.

Two kernel shapes: for M < 16 a split-K GEMV kernel (one program per row of x, block of output
features and range of K; ``tl.dot`` needs 16 rows). It reads the packed weights as int32 words (8
nibbles or 4 int8 values per load) and folds the dequantization into the dot per group of 32,
``s * sum(q x) + m * sum(x)``, so its inner loop is integer unpacking and one multiply-add per
weight; narrow layers (N <= 1024: a few dozen output blocks for a GPU of 132 SMs) split K over
several programs whose float32 partial sums are added in a fixed order afterwards. Its block sizes
and split come from a recorded table per shape class (``gemv_table.json``, :func:`gemv_config`;
measured by ``bench/triton_gemv_tune.py``, never tuned at serving time). For M >= 16 a tiled
``tl.dot`` kernel that steps one quantization group at a time, so scales (and mins) are one
[BLOCK_N] vector per step, and dequantizes the [32, BLOCK_N] weight tile into x's dtype. Both
accumulate in float32 and store in x's dtype. The INT4 kernels read each packed byte once: they
multiply the low nibbles with the x columns ``g*32 + i`` and the high nibbles with ``g*32 + 16 + i``.

Interpreter note: under ``TRITON_INTERPRET=1`` ``tl.dot`` on bfloat16 multiplies the raw uint16 bits,
so there the bfloat16 path upcasts both operands to float32 first (the products of bfloat16 values
are exact in float32 and a GPU bfloat16 dot accumulates in float32, so the result is the same up to
summation order). On the GPU bfloat16 goes to the tensor cores as it is.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import triton
import triton.language as tl

from kernels.quant_reference import (
    dequantize_int4_tensors,
    dequantize_int8_tensors,
    quantize_int4_tensors,
    quantize_int8_tensors,
)
from kernels.triton._common import check_float, check_launch, describe, next_pow2

GROUP = 32  # inputs per quantization group, fixed by the GGUF formats
#: GEMV (M < 16) launch configurations per (format, shape class): see :func:`gemv_config`.
GEMV_TABLE = Path(__file__).with_name("gemv_table.json")


# --------------------------------------------------------------------------------------------------
# PyTorch helpers: quantize, dequantize, reference matmuls
# --------------------------------------------------------------------------------------------------


def _check_weight(w: torch.Tensor) -> tuple[int, int]:
    if not isinstance(w, torch.Tensor) or not w.is_floating_point() or w.dim() != 2:
        raise ValueError(f"w must be a 2-D floating point tensor [N, K], got {getattr(w, 'shape', type(w))}")
    n, k = w.shape
    if k % GROUP:
        raise ValueError(f"w: K (in features, dim 1) must be a multiple of {GROUP}, got {k}")
    return n, k


def quantize_int4(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantize a float weight [N, K] to Q4_1: returns (qweight uint8 [N, K//2], scales, mins).

    Per group of 32: ``min``, ``scale = (max - min) / 15`` (0 when max == min, then every q is 0),
    ``q = round((w - min) / scale)`` clamped to 0..15, the nibbles packed as described in the module
    docstring. Scales and mins stay float32 (GGUF stores float16; the loader widens them).
    """
    _check_weight(w)
    return quantize_int4_tensors(w)


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize a float weight [N, K] to Q8_0: returns (qweight int8 [N, K], scales float32 [N, K//32]).

    Per group of 32: ``scale = absmax / 127``, ``q = round(w / scale)`` (0 when the group is all zero).
    """
    _check_weight(w)
    return quantize_int8_tensors(w)


def _check_int4_weights(qweight: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor) -> tuple[int, int]:
    """Validate Q4_1 tensors; return (N, K)."""
    if not isinstance(qweight, torch.Tensor) or qweight.dtype != torch.uint8 or qweight.dim() != 2:
        raise ValueError(f"qweight must be a 2-D uint8 tensor [N, K//2], got {describe(qweight)}")
    n, k = qweight.shape[0], qweight.shape[1] * 2
    if k % GROUP:
        raise ValueError(f"qweight: K = 2 * qweight.shape[1] = {k} must be a multiple of {GROUP}")
    for name, t in (("scales", scales), ("mins", mins)):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.float32 or tuple(t.shape) != (n, k // GROUP):
            raise ValueError(f"{name} must be float32 of shape {(n, k // GROUP)} (N, K//32), got {describe(t)}")
    return n, k


def _check_int8_weights(qweight: torch.Tensor, scales: torch.Tensor) -> tuple[int, int]:
    """Validate Q8_0 tensors; return (N, K)."""
    if not isinstance(qweight, torch.Tensor) or qweight.dtype != torch.int8 or qweight.dim() != 2:
        raise ValueError(f"qweight must be a 2-D int8 tensor [N, K], got {describe(qweight)}")
    n, k = qweight.shape
    if k % GROUP:
        raise ValueError(f"qweight: K = qweight.shape[1] = {k} must be a multiple of {GROUP}")
    if not isinstance(scales, torch.Tensor) or scales.dtype != torch.float32 or tuple(scales.shape) != (n, k // GROUP):
        raise ValueError(f"scales must be float32 of shape {(n, k // GROUP)} (N, K//32), got {describe(scales)}")
    return n, k



def dequantize_int4(qweight: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor) -> torch.Tensor:
    """Expand Q4_1 tensors to a float32 weight [N, K]."""
    _check_int4_weights(qweight, scales, mins)
    return dequantize_int4_tensors(qweight, scales, mins)


def dequantize_int8(qweight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Expand Q8_0 tensors to a float32 weight [N, K]."""
    _check_int8_weights(qweight, scales)
    return dequantize_int8_tensors(qweight, scales)


def _check_x(x: torch.Tensor, k: int) -> None:
    check_float("x", x, 2)
    if x.shape[1] != k:
        raise ValueError(f"x must have K = {k} columns to match qweight, got shape {tuple(x.shape)}")


def int4_matmul_reference(
    x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor
) -> torch.Tensor:
    """``x @ dequantize_int4(...)^T`` in float32, returned in x's dtype: the oracle for the kernel."""
    _, k = _check_int4_weights(qweight, scales, mins)
    _check_x(x, k)
    return (x.to(torch.float32) @ dequantize_int4(qweight, scales, mins).T).to(x.dtype)


def int8_matmul_reference(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``x @ dequantize_int8(...)^T`` in float32, returned in x's dtype: the oracle for the kernel."""
    _, k = _check_int8_weights(qweight, scales)
    _check_x(x, k)
    return (x.to(torch.float32) @ dequantize_int8(qweight, scales).T).to(x.dtype)


# --------------------------------------------------------------------------------------------------
# Triton kernels
# --------------------------------------------------------------------------------------------------


@triton.jit
def _gemv_kernel(
    x_ptr, qw_ptr, s_ptr, mn_ptr, y_ptr,
    N, K, K_SPLIT,
    stride_xm, stride_xk, stride_qn, stride_sn, stride_sg, stride_mn, stride_mg, stride_ys, stride_ym, stride_yn,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, INT4: tl.constexpr, PER_WORD: tl.constexpr,
):  # fmt: skip
    """One row of x times a BLOCK_N slice of W over one split of K (``K_SPLIT`` inputs, a multiple of
    BLOCK_K), for Q4_1 (``INT4``) or Q8_0 weights (then ``mn_ptr`` is unused).

    The packed weights are read as int32 words: 8 nibbles (Q4_1) or 4 signed bytes (Q8_0, sign-
    extended by shifting each byte to the top and back). Dequantization is folded into the dot per
    group of 32: ``sum_i (q_i s + m) x_i = s * sum_i q_i x_i + m * sum_i x_i``, so the inner loop is
    integer unpacking and one multiply-add per weight. Writes this split's partial sum (split-K:
    narrow layers get enough programs to fill the GPU; the wrapper adds the splits)."""
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    m = tl.program_id(2).to(tl.int64)
    WORDS: tl.constexpr = BLOCK_K // PER_WORD
    GROUPS: tl.constexpr = BLOCK_K // 32
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    offs_w = tl.arange(0, WORDS)
    offs_v = tl.arange(0, PER_WORD)
    if INT4:
        # nibble v of word j: byte v // 2, high nibble when v is odd, bits 4v..4v+3; its input
        # (relative to the block) is group j // 4, position 4 (j % 4) + v // 2, + 16 for a high nibble
        word, v = offs_w[:, None], offs_v[None, :]
        rel = (word // 4) * 32 + (v % 2) * 16 + (word % 4) * 4 + v // 2
        shift = offs_v * 4
    else:
        rel = offs_w[:, None] * 4 + offs_v[None, :]  # byte v of word j is input 4 j + v
        shift = 24 - offs_v * 8
    offs_g = tl.arange(0, GROUPS)
    acc = tl.zeros((BLOCK_N, GROUPS), dtype=tl.float32)
    k_begin = pid_s * K_SPLIT
    k_end = tl.minimum(K, k_begin + K_SPLIT)
    for k0 in range(k_begin, k_end, BLOCK_K):
        words = k0 // PER_WORD + offs_w
        mask_w = mask_n[:, None] & (words < K // PER_WORD)[None, :]
        w = tl.load(qw_ptr + offs_n[:, None] * stride_qn + words[None, :], mask=mask_w, other=0)
        if INT4:
            q = ((w[:, :, None] >> shift[None, None, :]) & 0xF).to(tl.float32)  # [BLOCK_N, WORDS, 8]
        else:
            q = ((w[:, :, None] << shift[None, None, :]) >> 24).to(tl.float32)  # [BLOCK_N, WORDS, 4]
        k = k0 + rel
        xk = tl.load(x_ptr + m * stride_xm + k * stride_xk, mask=k < K, other=0.0).to(tl.float32)
        qx = tl.sum(tl.reshape(tl.sum(q * xk[None, :, :], axis=2), (BLOCK_N, GROUPS, 32 // PER_WORD)), axis=2)
        g = k0 // 32 + offs_g
        mask_g = mask_n[:, None] & (g < K // 32)[None, :]
        s = tl.load(s_ptr + offs_n[:, None] * stride_sn + g[None, :] * stride_sg, mask=mask_g, other=0.0)
        acc += s * qx
        if INT4:
            mn = tl.load(mn_ptr + offs_n[:, None] * stride_mn + g[None, :] * stride_mg, mask=mask_g, other=0.0)
            acc += mn * tl.sum(tl.reshape(xk, (GROUPS, 32)), axis=1)[None, :]
    y = tl.sum(acc, axis=1)
    y_ptrs = y_ptr + pid_s * stride_ys + m * stride_ym + offs_n * stride_yn
    tl.store(y_ptrs, y.to(y_ptr.dtype.element_ty), mask=mask_n)


@triton.jit
def _int4_dot_kernel(
    x_ptr, qw_ptr, s_ptr, mn_ptr, y_ptr,
    M, N, K,
    stride_xm, stride_xk, stride_qn, stride_qk, stride_sn, stride_sg, stride_mn, stride_mg, stride_ym, stride_yn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, DOT_F32: tl.constexpr,
):  # fmt: skip
    """A [BLOCK_M, BLOCK_N] tile of y, one group of 32 inputs per step: a [BLOCK_N] vector of scales and
    of mins per step, and two tl.dot of depth 16 (low nibbles, then high nibbles)."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < M
    mask_n = offs_n < N
    offs_i = tl.arange(0, 16)
    x_rows = x_ptr + offs_m[:, None] * stride_xm
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for g in range(0, K // 32):
        k = g * 32 + offs_i  # inputs of the low nibbles; the high nibbles are k + 16
        x_lo = tl.load(x_rows + k[None, :] * stride_xk, mask=mask_m[:, None], other=0.0)
        x_hi = tl.load(x_rows + (k + 16)[None, :] * stride_xk, mask=mask_m[:, None], other=0.0)
        byte = g * 16 + offs_i
        qb = tl.load(qw_ptr + offs_n[None, :] * stride_qn + byte[:, None] * stride_qk, mask=mask_n[None, :], other=0)
        s = tl.load(s_ptr + offs_n * stride_sn + g * stride_sg, mask=mask_n, other=0.0)[None, :]
        mn = tl.load(mn_ptr + offs_n * stride_mn + g * stride_mg, mask=mask_n, other=0.0)[None, :]
        w_lo = (qb & 0xF).to(tl.float32) * s + mn
        w_hi = (qb >> 4).to(tl.float32) * s + mn
        if DOT_F32:
            acc = tl.dot(x_lo.to(tl.float32), w_lo, acc, input_precision="ieee")
            acc = tl.dot(x_hi.to(tl.float32), w_hi, acc, input_precision="ieee")
        else:
            acc = tl.dot(x_lo, w_lo.to(x_lo.dtype), acc)
            acc = tl.dot(x_hi, w_hi.to(x_hi.dtype), acc)
    y_ptrs = y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :] * stride_yn
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


@triton.jit
def _int8_dot_kernel(
    x_ptr, qw_ptr, s_ptr, y_ptr,
    M, N, K,
    stride_xm, stride_xk, stride_qn, stride_qk, stride_sn, stride_sg, stride_ym, stride_yn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, DOT_F32: tl.constexpr,
):  # fmt: skip
    """A [BLOCK_M, BLOCK_N] tile of y (Q8_0), one group of 32 inputs and one [BLOCK_N] scale vector per step."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < M
    mask_n = offs_n < N
    offs_i = tl.arange(0, 32)
    x_rows = x_ptr + offs_m[:, None] * stride_xm
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for g in range(0, K // 32):
        k = g * 32 + offs_i
        xt = tl.load(x_rows + k[None, :] * stride_xk, mask=mask_m[:, None], other=0.0)
        q = tl.load(qw_ptr + offs_n[None, :] * stride_qn + k[:, None] * stride_qk, mask=mask_n[None, :], other=0)
        s = tl.load(s_ptr + offs_n * stride_sn + g * stride_sg, mask=mask_n, other=0.0)
        w = q.to(tl.float32) * s[None, :]
        if DOT_F32:  # noqa: SIM108 (a constexpr if/else is compile-time specialization, kept explicit)
            acc = tl.dot(xt.to(tl.float32), w, acc, input_precision="ieee")
        else:
            acc = tl.dot(xt, w.to(xt.dtype), acc)
    y_ptrs = y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :] * stride_yn
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


# --------------------------------------------------------------------------------------------------
# Launch configuration and wrappers
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchConfig:
    """Block sizes of one launch; ``block_m == 1`` selects the GEMV kernel.

    ``block_k`` (inputs per loop step) applies to the GEMV kernels; the tl.dot kernels step one
    quantization group at a time, so for them it must be 32.
    """

    block_m: int
    block_n: int
    block_k: int = GROUP
    num_warps: int = 4
    num_stages: int = 3
    split_k: int = 1  # GEMV only: K is cut into this many ranges, one program each, partial sums added


def shape_class(n: int, k: int) -> str:
    """The GEMV shape classes of the autotune table (SmolLM2-135M's layers in brackets): ``head``
    (N > 8192: the LM head), ``wide`` (N > 1024: gate_up), ``narrow-deep`` (N <= 1024, K >= 1024:
    down), ``narrow`` (qkv, o). Narrow layers have too few output blocks to fill a GPU, hence split-K."""
    if n > 8192:
        return "head"
    if n > 1024:
        return "wide"
    return "narrow-deep" if k >= 1024 else "narrow"


@functools.cache
def gemv_table(path: Path = GEMV_TABLE) -> dict[tuple[str, str], LaunchConfig]:
    """(``int4``/``int8``, shape class) -> GEMV config, from the recorded table (its ``source`` says
    whether the values were measured, and where)."""
    data = json.loads(Path(path).read_text())
    return {(e["kind"], e["class"]): LaunchConfig(1, e["block_n"], e["block_k"], e["num_warps"], e["num_stages"],
                                                  e["split_k"]) for e in data["entries"]}  # fmt: skip


def gemv_config(kind: str, n: int, k: int) -> LaunchConfig:
    """The table's config for a GPU GEMV of this format and shape (one kernel per shape class)."""
    return gemv_table()[(kind, shape_class(n, k))]


def pick_config(m: int, n: int, k: int, interpreted: bool, kind: str = "int4") -> LaunchConfig:
    """Block sizes without tuning at run time (reproducible first-call latency, no tuning in serving).

    GPU, M < 16 (decode): the recorded table's config for ``kind`` (int4 / int8) and the shape's
    class (:func:`gemv_config`), split-K for narrow layers so they fill the GPU. GPU, M >= 16:
    classic tensor-core tiles, larger when the output is big enough to fill the machine.
    Interpreter: every program is a Python loop iteration, so as few and as large programs as
    possible (block sizes only change speed, never results).
    """
    if interpreted:
        if m < 16:
            return LaunchConfig(1, min(64, max(16, next_pow2(n))), 64)
        return LaunchConfig(min(64, next_pow2(m)), min(64, max(16, next_pow2(n))))
    if m < 16:
        return gemv_config(kind, n, k)
    if m >= 256 and n >= 1024:
        return LaunchConfig(128, 128, num_warps=8, num_stages=3)
    block_m = min(64, next_pow2(m))
    tiles = triton.cdiv(m, block_m) * triton.cdiv(n, 64)
    return LaunchConfig(block_m, 64 if tiles >= 132 else 32, num_warps=4, num_stages=3)


def _validate_config(cfg: LaunchConfig, m: int) -> None:
    for name in ("block_n", "block_k"):
        value = getattr(cfg, name)
        if value != next_pow2(value):
            raise ValueError(f"config.{name} must be a power of two, got {value}")
    if cfg.block_k < GROUP:
        raise ValueError(f"config.block_k must be >= {GROUP}, got {cfg.block_k}")
    if cfg.block_m != 1 and (cfg.block_m < 16 or cfg.block_n < 16 or cfg.block_m != next_pow2(cfg.block_m)):
        raise ValueError(f"config: tl.dot needs power-of-two block_m/block_n >= 16, got {cfg}")
    if cfg.block_m != 1 and cfg.block_k != GROUP:
        raise ValueError(f"config.block_k must be {GROUP} for the tl.dot kernels (one group per step), got {cfg}")
    if cfg.split_k < 1 or (cfg.block_m != 1 and cfg.split_k != 1):
        raise ValueError(f"config.split_k must be >= 1, and 1 for the tl.dot kernels, got {cfg}")
    if cfg.block_m == 1 and m > 65535:
        raise ValueError(f"config: the GEMV kernel puts rows on grid axis 2 (<= 65535), got M = {m}")


def _dot_f32(x: torch.Tensor, interpreted: bool) -> bool:
    """Run tl.dot in float32 for float32 x, and for bfloat16 under the interpreter (module docstring)."""
    return x.dtype == torch.float32 or (interpreted and x.dtype == torch.bfloat16)


def _words(qweight: torch.Tensor) -> torch.Tensor:
    """``qweight``'s rows as int32 words (little-endian: byte b of a word is bits 8b..8b+7), so that
    one load moves 8 nibbles or 4 int8 values; a copy only when its rows cannot be viewed so."""
    q = qweight
    if q.stride(1) != 1 or q.stride(0) % 4 or q.storage_offset() % 4:
        q = q.contiguous()
    return q.view(torch.int32)


def _gemv(x: torch.Tensor, y: torch.Tensor, weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
          weight_strides: tuple[int, ...], cfg: LaunchConfig, int4: bool) -> torch.Tensor:
    """Launch the split-K GEMV kernel on (int32 words, scales, mins; Q8_0 passes its scales as mins,
    unused): grid (output blocks, K splits, rows). One split writes y itself;
    several write float32 partial sums that are added afterwards (a fixed order: deterministic,
    unlike atomics), then cast to x's dtype."""
    m, k = x.shape
    n = y.shape[1]
    k_split = triton.cdiv(triton.cdiv(k, cfg.split_k), cfg.block_k) * cfg.block_k
    splits = triton.cdiv(k, k_split)
    out = y if splits == 1 else torch.empty((splits, m, n), dtype=torch.float32, device=x.device)
    out_strides = (0, *y.stride()) if splits == 1 else out.stride()
    _gemv_kernel[(triton.cdiv(n, cfg.block_n), splits, m)](
        x, *weights, out, n, k, k_split, *x.stride(), *weight_strides, *out_strides,
        BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, INT4=int4, PER_WORD=8 if int4 else 4,  # values per int32 word
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )  # fmt: skip
    return y if splits == 1 else torch.sum(out, dim=0, out=torch.empty((m, n), dtype=torch.float32,
                                                                      device=x.device)).to(x.dtype)


def int4_matmul(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    mins: torch.Tensor,
    *,
    config: LaunchConfig | None = None,
) -> torch.Tensor:
    """``x @ W^T`` for Q4_1 W: x [M, K] float32/float16/bfloat16 -> y [M, N] in x's dtype.

    ``config`` overrides the block sizes (tests and tuning); by default :func:`pick_config`.
    Float32 x uses exact float32 dots (no TF32); use float16/bfloat16 activations for speed.
    """
    n, k = _check_int4_weights(qweight, scales, mins)
    _check_x(x, k)
    interpreted = check_launch(_int4_dot_kernel, x=x, qweight=qweight, scales=scales, mins=mins)
    m = x.shape[0]
    y = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0 or n == 0 or k == 0:
        return y.zero_()
    cfg = config or pick_config(m, n, k, interpreted, "int4")
    _validate_config(cfg, m)
    if cfg.block_m == 1:
        words = _words(qweight)
        return _gemv(x, y, (words, scales, mins), (words.stride(0), *scales.stride(), *mins.stride()), cfg, True)
    strides = (*x.stride(), *qweight.stride(), *scales.stride(), *mins.stride(), *y.stride())
    grid = (triton.cdiv(m, cfg.block_m), triton.cdiv(n, cfg.block_n))
    _int4_dot_kernel[grid](
        x, qweight, scales, mins, y, m, n, k, *strides,
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, DOT_F32=_dot_f32(x, interpreted),
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )  # fmt: skip
    return y


def int8_matmul(
    x: torch.Tensor,
    qweight: torch.Tensor,
    scales: torch.Tensor,
    *,
    config: LaunchConfig | None = None,
) -> torch.Tensor:
    """``x @ W^T`` for Q8_0 W: x [M, K] float32/float16/bfloat16 -> y [M, N] in x's dtype.

    ``config`` overrides the block sizes (tests and tuning); by default :func:`pick_config`.
    """
    n, k = _check_int8_weights(qweight, scales)
    _check_x(x, k)
    interpreted = check_launch(_int8_dot_kernel, x=x, qweight=qweight, scales=scales)
    m = x.shape[0]
    y = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0 or n == 0 or k == 0:
        return y.zero_()
    cfg = config or pick_config(m, n, k, interpreted, "int8")
    _validate_config(cfg, m)
    if cfg.block_m == 1:
        words = _words(qweight)
        return _gemv(x, y, (words, scales, scales), (words.stride(0), *scales.stride(), *scales.stride()), cfg, False)
    strides = (*x.stride(), *qweight.stride(), *scales.stride(), *y.stride())
    grid = (triton.cdiv(m, cfg.block_m), triton.cdiv(n, cfg.block_n))
    _int8_dot_kernel[grid](
        x, qweight, scales, y, m, n, k, *strides,
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, DOT_F32=_dot_f32(x, interpreted),
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )  # fmt: skip
    return y
