"""Rotary position embedding, Llama / Hugging Face "rotate_half" convention (not interleaved).

For head_dim D the rotated pairs are (i, i + D/2), ``inv_freq[i] = theta^(-2i/D)``,
``angle = pos * inv_freq[i]``, ``out[i] = x[i] cos - x[i+D/2] sin``, ``out[i+D/2] = x[i+D/2] cos +
x[i] sin``; math in float32, output in x's dtype.

Why cos/sin come from a table and not from ``tl.cos`` in the kernel: angles reach thousands of
radians, where the GPU's fast approximate sin/cos lose digits; a float32 table built by PyTorch
(like vLLM's ``cos_sin_cache``) gives exactly the reference's values. Pass ``cos_sin_cache`` from
:func:`rotary_cos_sin_cache` (built once per model) and the kernel gathers the rows by position;
without it the wrapper builds the rows for the given positions first (a few small PyTorch ops).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.triton._common import check_float, check_launch, describe, next_pow2


def _inv_freq(head_dim: int, theta: float, device: torch.device | str | None) -> torch.Tensor:
    """Hugging Face's formula, float32: ``1 / theta ** (arange(0, D, 2) / D)``."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).to(torch.float32) / head_dim
    return 1.0 / (theta**exponents)


def _cos_sin(positions: torch.Tensor, head_dim: int, theta: float) -> torch.Tensor:
    """[len(positions), D] float32 rows ``cos(angle) | sin(angle)`` for the given positions."""
    angle = positions.to(torch.float32)[:, None] * _inv_freq(head_dim, theta, positions.device)[None, :]
    return torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)


def rotary_cos_sin_cache(
    max_positions: int, head_dim: int, theta: float = 100000.0, device: torch.device | str | None = None
) -> torch.Tensor:
    """Table for :func:`apply_rotary`: float32 [max_positions, head_dim], row p = cos | sin at position p."""
    if max_positions < 0:
        raise ValueError(f"max_positions must be >= 0, got {max_positions}")
    _check_head_dim(head_dim)
    return _cos_sin(torch.arange(max_positions, device=device), head_dim, theta).contiguous()


def _check_head_dim(head_dim: int) -> None:
    if head_dim <= 0 or head_dim % 2:
        raise ValueError(f"head_dim must be positive and even, got {head_dim}")


def _check(x: torch.Tensor, positions: torch.Tensor) -> None:
    check_float("x", x, 3)
    _check_head_dim(x.shape[2])
    if not isinstance(positions, torch.Tensor) or positions.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"positions must be an int32 or int64 tensor, got {getattr(positions, 'dtype', positions)}")
    if positions.dim() != 1 or positions.shape[0] != x.shape[0]:
        raise ValueError(f"positions must have shape [T] = [{x.shape[0]}], got {tuple(positions.shape)}")


def apply_rotary_reference(x: torch.Tensor, positions: torch.Tensor, theta: float = 100000.0) -> torch.Tensor:
    """PyTorch oracle: x [T, n_heads, D] rotated at ``positions`` [T]; a new tensor in x's dtype."""
    _check(x, positions)
    half = x.shape[2] // 2
    cs = _cos_sin(positions, x.shape[2], theta)[:, None, :]  # [T, 1, D]
    cos, sin = cs[..., :half], cs[..., half:]
    xf = x.to(torch.float32)
    x1, x2 = xf[..., :half], xf[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


@triton.jit
def _rotary_kernel(
    x_ptr, y_ptr, cs_ptr, pos_ptr,
    n_heads, half,
    stride_xt, stride_xh, stride_xd, stride_yt, stride_yh, stride_yd, stride_cp, stride_cd,
    BLOCK_HEADS: tl.constexpr, BLOCK_HALF: tl.constexpr, USE_POS: tl.constexpr,
):  # fmt: skip
    """Token t, BLOCK_HEADS heads: both halves are read before either is written (in-place safe)."""
    t = tl.program_id(0).to(tl.int64)
    offs_h = tl.program_id(1) * BLOCK_HEADS + tl.arange(0, BLOCK_HEADS)
    offs_d = tl.arange(0, BLOCK_HALF)
    mask_d = offs_d < half
    if USE_POS:  # noqa: SIM108 (a constexpr if/else is compile-time specialization, kept explicit)
        row = tl.load(pos_ptr + t).to(tl.int64)
    else:
        row = t
    cos = tl.load(cs_ptr + row * stride_cp + offs_d * stride_cd, mask=mask_d, other=0.0)
    sin = tl.load(cs_ptr + row * stride_cp + (offs_d + half) * stride_cd, mask=mask_d, other=0.0)
    mask = (offs_h < n_heads)[:, None] & mask_d[None, :]
    x_base = x_ptr + t * stride_xt + offs_h[:, None] * stride_xh
    x1 = tl.load(x_base + offs_d[None, :] * stride_xd, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x_base + (offs_d + half)[None, :] * stride_xd, mask=mask, other=0.0).to(tl.float32)
    o1 = x1 * cos[None, :] - x2 * sin[None, :]
    o2 = x2 * cos[None, :] + x1 * sin[None, :]
    y_base = y_ptr + t * stride_yt + offs_h[:, None] * stride_yh
    tl.store(y_base + offs_d[None, :] * stride_yd, o1.to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(y_base + (offs_d + half)[None, :] * stride_yd, o2.to(y_ptr.dtype.element_ty), mask=mask)


def apply_rotary(
    x: torch.Tensor,
    positions: torch.Tensor,
    theta: float = 100000.0,
    *,
    cos_sin_cache: torch.Tensor | None = None,
    inplace: bool = False,
) -> torch.Tensor:
    """Rotate x [T, n_heads, D] (any strides, e.g. a view into a fused QKV output) at ``positions`` [T].

    Returns a new contiguous tensor, or x itself rotated in place when ``inplace=True``.
    ``cos_sin_cache`` (from :func:`rotary_cos_sin_cache`, then ``theta`` is ignored) must have D
    columns and more rows than the largest position; rows are gathered without a bounds check on the
    GPU (a check would cost a device sync), on the CPU out-of-range positions raise ValueError.
    """
    _check(x, positions)
    t, n_heads, d = x.shape
    half = d // 2
    if cos_sin_cache is None:
        table, pos, use_pos = _cos_sin(positions, d, theta), positions, False
    else:
        if cos_sin_cache.dtype != torch.float32 or cos_sin_cache.dim() != 2 or cos_sin_cache.shape[1] != d:
            raise ValueError(f"cos_sin_cache must be float32 [max_positions, {d}], got {describe(cos_sin_cache)}")
        if positions.device.type == "cpu" and t and (
            int(positions.min()) < 0 or int(positions.max()) >= cos_sin_cache.shape[0]
        ):
            raise ValueError(f"positions must lie in [0, {cos_sin_cache.shape[0]}) of cos_sin_cache")
        table, pos, use_pos = cos_sin_cache, positions, True
    check_launch(_rotary_kernel, x=x, positions=positions, cos_sin_cache=table)
    y = x if inplace else torch.empty((t, n_heads, d), dtype=x.dtype, device=x.device)
    if t == 0 or n_heads == 0:
        return y
    block_heads = min(next_pow2(n_heads), max(1, 4096 // next_pow2(half)))
    grid = (t, triton.cdiv(n_heads, block_heads))
    _rotary_kernel[grid](
        x, y, table, pos, n_heads, half, *x.stride(), *y.stride(), *table.stride(),
        BLOCK_HEADS=block_heads, BLOCK_HALF=next_pow2(half), USE_POS=use_pos, num_warps=4,
    )  # fmt: skip
    return y

