"""Plain-NumPy reference for the per-row work of the C++ step (kernels/cpp/llm_step/row_dispatch.h).

Around its matmuls a step quantizes activations to int8 per block of 32 (optionally with a second
int8 term for the residual, "int8x2"), takes RMS-norm factors, applies SwiGLU / GeGLU and runs
attention with an online softmax. The C++ code has an AVX-512, an AVX2 and a scalar path for each;
these functions say what all of them must compute, in the plainest form (whole-row softmax, float64
where the kernels' summation order may differ), and tests/unit/test_llm_row_kernels.py holds every
path to them on random rows.
"""

from __future__ import annotations

import numpy as np

GROUP = 32


def quantize_block_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x [M, K] float32 (K a multiple of 32) → (q int8 [M, K], d [M, K/32], ds [M, K/32]).

    d = absmax / 127 per block, q = round-half-even(x / d) (as x * (1 / d) in float32), ds = d * sum(q).
    A block holding NaN or ±inf gets q = 0 and d = ds = NaN, so everything it feeds is NaN."""
    x = np.asarray(x, np.float32)
    m, k = x.shape
    blocks = x.reshape(m, k // GROUP, GROUP)
    with np.errstate(all="ignore"):
        finite = np.isfinite(blocks).all(-1)
        amax = np.abs(blocks).max(-1, initial=np.float32(0)).astype(np.float32)
        d = (amax / np.float32(127)).astype(np.float32)
        inv = np.where(d > 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
        scaled = np.where(np.isfinite(inv)[..., None], blocks * inv[..., None], blocks / d[..., None])
        q = np.clip(np.rint(np.where(finite[..., None], scaled, 0)), -127, 127).astype(np.int8)
    d = np.where(finite, d, np.float32(np.nan)).astype(np.float32)
    ds = (d * q.astype(np.int32).sum(-1).astype(np.float32)).astype(np.float32)
    return q.reshape(m, k), d, ds


def dequantize_rows(q: np.ndarray, d: np.ndarray, parts: int) -> np.ndarray:
    """The float32 rows a (q, d) pair stands for: d1 q1 (+ d2 q2 with the residual term)."""
    m, width = q.shape
    k = width // parts
    out = np.zeros((m, k), np.float64)
    for p in range(parts):
        qp = q[:, p * k:(p + 1) * k].astype(np.float64).reshape(m, k // GROUP, GROUP)
        dp = d[:, p * (k // GROUP):(p + 1) * (k // GROUP)].astype(np.float64)
        out += (qp * dp[..., None]).reshape(m, k)
    return out


def rms_inv(x: np.ndarray, eps: float) -> np.ndarray:
    """1 / sqrt(mean(x²) + eps) per row (rows of at least one value)."""
    x = np.asarray(x, np.float64)
    return 1.0 / np.sqrt((x * x).mean(-1) + eps)


def silu_mul(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    g = np.asarray(gate, np.float64)
    with np.errstate(over="ignore"):
        return g / (1.0 + np.exp(-g)) * np.asarray(up, np.float64)


def gelu_tanh_mul(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    a = np.asarray(gate, np.float64)
    return 0.5 * a * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (a + 0.044715 * a**3))) * np.asarray(up, np.float64)


def attend(q: np.ndarray, K: np.ndarray, V: np.ndarray, kx: np.ndarray, vx: np.ndarray) -> np.ndarray:
    """softmax(q · [K; kx]ᵀ) [V; vx] for one head (q already scaled by 1/√head_dim)."""
    keys = np.vstack([np.asarray(K, np.float64).reshape(-1, len(q)), np.asarray(kx, np.float64)[None]])
    values = np.vstack([np.asarray(V, np.float64).reshape(-1, len(q)), np.asarray(vx, np.float64)[None]])
    s = keys @ np.asarray(q, np.float64)
    p = np.exp(s - s.max())
    return (p / p.sum()) @ values
