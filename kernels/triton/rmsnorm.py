"""RMSNorm over the last dimension, and the fused residual-add + RMSNorm of every Llama block.

Why a kernel: RMSNorm is pure memory traffic; eager PyTorch spends one pass per op (square, mean,
rsqrt, two multiplies, casts), the kernel reads the row once and writes it once. Fusing the residual
add saves another read and write of the hidden state per norm, twice per layer.

Math (both kernel and reference): float32 throughout, ``x * rsqrt(mean(x^2) + eps) * weight``, cast
to x's dtype at the end. Hugging Face's ``LlamaRMSNorm`` casts to x's dtype before multiplying by
the weight; for float16/bfloat16 that differs by at most one rounding of the output.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.triton._common import check_float, check_launch, next_pow2


@triton.jit
def _rms_norm_kernel(
    x_ptr, r_ptr, w_ptr, y_ptr, sum_ptr,
    H, eps,
    stride_xm, stride_xh, stride_rm, stride_rh, stride_ym, stride_yh, stride_sm, stride_sh,
    BLOCK_H: tl.constexpr, ADD_RESIDUAL: tl.constexpr,
):  # fmt: skip
    """One row per program; with ADD_RESIDUAL first s = x + r (stored, rounded), then norm of s."""
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK_H)
    mask = offs < H
    x = tl.load(x_ptr + row * stride_xm + offs * stride_xh, mask=mask, other=0.0)
    if ADD_RESIDUAL:
        r = tl.load(r_ptr + row * stride_rm + offs * stride_rh, mask=mask, other=0.0)
        # Round the sum to x's dtype first: the stored residual and the normed value then agree with
        # the unfused ``s = x + r; rms_norm(s)``.
        s = (x.to(tl.float32) + r.to(tl.float32)).to(x.dtype)
        tl.store(sum_ptr + row * stride_sm + offs * stride_sh, s, mask=mask)
        x = s
    xf = x.to(tl.float32)
    mean_sq = tl.sum(xf * xf, axis=0) / H
    inv = tl.rsqrt(mean_sq + eps)
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    y = xf * inv * w
    tl.store(y_ptr + row * stride_ym + offs * stride_yh, y.to(y_ptr.dtype.element_ty), mask=mask)


def _check(x: torch.Tensor, weight: torch.Tensor, eps: float) -> None:
    check_float("x", x, 2)
    check_float("weight", weight, 1)
    if weight.shape[0] != x.shape[1]:
        raise ValueError(f"weight must have x.shape[1] = {x.shape[1]} elements, got {weight.shape[0]}")
    if not isinstance(eps, (int, float)) or not eps >= 0:
        raise ValueError(f"eps must be a non-negative number, got {eps!r}")


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """PyTorch oracle: float32 ``x * rsqrt(mean(x^2) + eps) * weight`` in x's dtype."""
    _check(x, weight, eps)
    xf = x.to(torch.float32)
    inv = torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (xf * inv * weight.to(torch.float32)).to(x.dtype)


def add_rms_norm_reference(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch oracle of :func:`add_rms_norm`: ``s = x + residual; (rms_norm(s), s)``."""
    _check_residual(x, residual)
    s = x + residual
    return rms_norm_reference(s, weight, eps), s


def _check_residual(x: torch.Tensor, residual: torch.Tensor) -> None:
    check_float("residual", residual, 2)
    if residual.shape != x.shape or residual.dtype != x.dtype:
        raise ValueError(
            f"residual must match x ({x.dtype} {tuple(x.shape)}), got {residual.dtype} {tuple(residual.shape)}"
        )


def _launch(
    x: torch.Tensor, residual: torch.Tensor | None, weight: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    tensors = {"x": x, "weight": weight} | ({} if residual is None else {"residual": residual})
    interpreted = check_launch(_rms_norm_kernel, **tensors)
    m, h = x.shape
    y = torch.empty_like(x, memory_format=torch.contiguous_format)
    s = torch.empty_like(y) if residual is not None else y
    if m == 0 or h == 0:
        return y, s
    r = residual if residual is not None else x
    block_h = next_pow2(h)
    # GPU: one warp per 256 elements of the row, up to 8 (H = 576 -> 4 warps).
    num_warps = 4 if interpreted else min(8, max(1, block_h // 256))
    _rms_norm_kernel[(m,)](
        x, r, weight, y, s, h, float(eps),
        *x.stride(), *r.stride(), *y.stride(), *s.stride(),
        BLOCK_H=block_h, ADD_RESIDUAL=residual is not None, num_warps=num_warps,
    )  # fmt: skip
    return y, s


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """RMSNorm of each row of x [M, H] (any M, including 0); returns a new tensor in x's dtype."""
    _check(x, weight, eps)
    return _launch(x, None, weight, eps)[0]


def add_rms_norm(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused ``s = x + residual`` and ``rms_norm(s)``: returns ``(normed, s)``, both new tensors.

    ``residual`` must have x's shape and dtype; ``s`` is the next block's residual stream.
    """
    _check(x, weight, eps)
    _check_residual(x, residual)
    return _launch(x, residual, weight, eps)
