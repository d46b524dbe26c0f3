"""Numba kernel for kernels.stream_features: the per-event update of the rolling statistics.

Same operations, in the same order, as ``kernels.stream_features.update_python`` (read that for
the argument contract): mean and std are recomputed from the ring buffer oldest value first, so
results match the reference bit for bit and never drift. ``fastmath`` stays off for the same
reason. The key -> slot mapping stays in Python; this kernel only walks the events.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

STD_EPS = 1e-12  # must match kernels.stream_features.STD_EPS


@nb.njit(nogil=True, cache=True, fastmath=False, boundscheck=False)
def update(
    slots: np.ndarray,
    fresh: np.ndarray,
    X: np.ndarray,
    buf: np.ndarray,
    counts: np.ndarray,
    ewma: np.ndarray,
    alpha: float,
    out: np.ndarray,
) -> None:
    n, nf = X.shape
    window = buf.shape[1]
    for e in range(n):
        s = slots[e]
        if fresh[e]:
            for j in range(nf):
                counts[s, j] = 0
        for j in range(nf):
            x = X[e, j]
            c = counts[s, j]
            h = min(c, window)
            mean = math.nan
            std = math.nan
            if h > 0:
                first = c - h
                total = 0.0
                for k in range(h):
                    total += buf[s, (first + k) % window, j]
                mean = total / h
                sq = 0.0
                for k in range(h):
                    d = buf[s, (first + k) % window, j] - mean
                    sq += d * d
                std = math.sqrt(sq / h)
            if math.isnan(x):
                out[e, j] = mean
                out[e, nf + j] = std
                out[e, 2 * nf + j] = math.nan
                out[e, 3 * nf + j] = ewma[s, j] if c > 0 else math.nan
                continue
            if h == 0:
                mean = x
                std = 0.0
                z = 0.0
            else:
                z = (x - mean) / std if std > STD_EPS else 0.0
            e_new = x if c == 0 else alpha * x + (1.0 - alpha) * ewma[s, j]
            out[e, j] = mean
            out[e, nf + j] = std
            out[e, 2 * nf + j] = z
            out[e, 3 * nf + j] = e_new
            ewma[s, j] = e_new
            buf[s, c % window, j] = x
            counts[s, j] = c + 1
