"""PSI bin counts of every feature of a window in one parallel pass (see ``kernels/drift.py``)."""

from __future__ import annotations

import numba as nb
import numpy as np

from kernels.numba.drift._jit import OPTS


@nb.njit(inline="always", **OPTS)
def _psi_bin(x: float, interior: np.ndarray, j: int, n_int: int, linear: bool) -> int:
    """Index of the bin holding x: the number of interior edges <= x (NaN handled by the caller).

    Few edges (the usual 9): a branch-free count over the NaN-padded row, which compiles to
    compares and adds without mispredicted branches. Many edges: binary search.
    """
    if linear:
        b = 0
        for m in range(interior.shape[1]):
            b += x >= interior[j, m]
        return b
    lo = 0
    hi = n_int
    while lo < hi:
        mid = (lo + hi) >> 1
        if interior[j, mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(parallel=True, **OPTS)
def psi_bin_counts(
    X: np.ndarray, col_major: bool, interior: np.ndarray, n_interior: np.ndarray, n_chunks: int
) -> np.ndarray:
    """Bin counts per feature: ``out[j, :n_interior[j] + 1]`` are the bins, ``out[j, n_interior[j] + 1]``
    the NaN count.

    ``X`` is ``[rows, features]`` (``col_major=False``) or its transpose ``[features, rows]``
    (``col_major=True``, so Fortran-ordered input is read along memory). ``interior`` holds each
    feature's interior edges, padded with NaN (a NaN edge never counts). Rows are split into
    ``n_chunks`` blocks, one private count table each, summed at the end.
    """
    n_features = interior.shape[0]
    n_rows = X.shape[1] if col_major else X.shape[0]
    width = interior.shape[1] + 2
    linear = interior.shape[1] <= 32
    local = np.zeros((n_chunks, n_features, width), dtype=np.int64)
    for c in nb.prange(n_chunks):
        r0 = c * n_rows // n_chunks
        r1 = (c + 1) * n_rows // n_chunks
        if col_major:
            for j in range(n_features):
                nan_slot = n_interior[j] + 1
                for i in range(r0, r1):
                    x = X[j, i]
                    if x != x:
                        local[c, j, nan_slot] += 1
                    else:
                        local[c, j, _psi_bin(x, interior, j, n_interior[j], linear)] += 1
        else:
            for i in range(r0, r1):
                for j in range(n_features):
                    x = X[i, j]
                    if x != x:
                        local[c, j, n_interior[j] + 1] += 1
                    else:
                        local[c, j, _psi_bin(x, interior, j, n_interior[j], linear)] += 1
    out = np.zeros((n_features, width), dtype=np.int64)
    for c in range(n_chunks):
        out += local[c]
    return out
