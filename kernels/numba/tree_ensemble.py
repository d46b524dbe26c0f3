"""Tree-ensemble scoring kernel in Numba: the "numba" implementation of kernels.tree_ensemble.

Same algorithm as kernels/cpp/tree_ensemble.cpp (its header gives the reasons): branch-free steps
over the packed layout of ``pack_forest``, several walks in lockstep (trees for small batches, rows
for large ones), NaN routing folded into one comparison by widening rows to 2 * n_features doubles,
leaf values summed per row in tree order. It exists for machines where the extensions are not
built: Numba compiles on first use (cached on disk), so it needs no compiler toolchain at install.

Large batches run a separate ``parallel=True`` function over row blocks; the serial one is kept
apart because a parallel region costs several microseconds even for one row.
"""

from __future__ import annotations

from collections.abc import Callable

import numba as nb
import numpy as np

from kernels.tree_ensemble import PackedForest

Arr = np.ndarray

# Must match _INF_INPUT in kernels/tree_ensemble.py.
INF_INPUT = 1e200
ROW_CHAINS = 16  # rows walking one tree in lockstep (large batches)
TREE_CHAINS = 8  # trees walking one row in lockstep (small batches)
SMALL_BATCH = 8  # below this many rows the row-outer path wins
BLOCK_BYTES = 65536  # widened rows per block stay in L1/L2 while all trees run

_OPTS = {"nogil": True, "cache": True, "fastmath": False, "boundscheck": False}


@nb.njit(inline="always", **_OPTS)
def _widen_row(x: np.ndarray, nf: int, out: np.ndarray, base: int) -> None:
    for j in range(nf):
        v = np.float64(x[j])
        if np.isnan(v):
            out[base + j] = np.inf
            out[base + nf + j] = -np.inf
        else:
            if np.isinf(v):
                v = INF_INPUT if v > 0 else -INF_INPUT
            out[base + j] = v
            out[base + nf + j] = v


@nb.njit(**_OPTS)
def _rows_small(
    thr: Arr, feat: Arr, left: Arr, values: Arr, roots: Arr, depths: Arr, X: Arr, r0: int, r1: int, out: Arr
) -> None:
    nf = X.shape[1]
    n_trees = roots.shape[0]
    row = np.empty(2 * nf, dtype=np.float64)
    idx = np.empty(TREE_CHAINS, dtype=np.int32)
    for r in range(r0, r1):
        _widen_row(X[r], nf, row, 0)
        acc = 0.0
        for t0 in range(0, n_trees, TREE_CHAINS):
            nt = min(TREE_CHAINS, n_trees - t0)
            depth = 0
            for g in range(TREE_CHAINS):
                t = t0 + min(g, nt - 1)  # pad with the last tree; its copies are ignored
                idx[g] = roots[t]
                depth = max(depth, depths[t])
            for _ in range(depth):
                moved = 0
                for g in range(TREE_CHAINS):
                    i = idx[g]
                    j = left[i] + np.int32(row[feat[i]] > thr[i])
                    moved |= j ^ i
                    idx[g] = j
                if moved == 0:
                    break
            for g in range(nt):
                acc += values[idx[g]]
        out[r] = acc


@nb.njit(**_OPTS)
def _rows_large(
    thr: Arr,
    feat: Arr,
    left: Arr,
    values: Arr,
    roots: Arr,
    depths: Arr,
    X: Arr,
    r0: int,
    r1: int,
    block_rows: int,
    out: Arr,
) -> None:
    nf = X.shape[1]
    w = 2 * nf
    n_trees = roots.shape[0]
    buf = np.empty(block_rows * w, dtype=np.float64)
    idx = np.empty(ROW_CHAINS, dtype=np.int32)
    base = np.empty(ROW_CHAINS, dtype=np.int64)
    for b0 in range(r0, r1, block_rows):
        b1 = min(r1, b0 + block_rows)
        for r in range(b0, b1):
            _widen_row(X[r], nf, buf, (r - b0) * w)
            out[r] = 0.0
        for t in range(n_trees):
            root = roots[t]
            depth = depths[t]
            for c0 in range(b0, b1, ROW_CHAINS):
                nr = min(ROW_CHAINS, b1 - c0)
                for c in range(ROW_CHAINS):
                    idx[c] = root
                    base[c] = (c0 - b0 + min(c, nr - 1)) * w  # pad with the last row
                for _ in range(depth):
                    for c in range(ROW_CHAINS):
                        i = idx[c]
                        idx[c] = left[i] + np.int32(buf[base[c] + feat[i]] > thr[i])
                for c in range(nr):
                    out[c0 + c] += values[idx[c]]


@nb.njit(**_OPTS)
def _finish(kind: int, denominator: float, out: Arr, r0: int, r1: int) -> None:
    """Random forest: mean. Isolation forest: -(sum / denominator); numpy raises 2 to it."""
    for i in range(r0, r1):
        if kind == 1:
            out[i] = out[i] / denominator
        elif denominator != 0.0:
            out[i] = out[i] / -denominator
        else:
            out[i] = -1.0  # scikit-learn's value when depth sum and denominator are both zero


@nb.njit(**_OPTS)
def _score_range(
    thr: Arr,
    feat: Arr,
    left: Arr,
    values: Arr,
    roots: Arr,
    depths: Arr,
    X: Arr,
    r0: int,
    r1: int,
    block_rows: int,
    kind: int,
    den: float,
    out: Arr,
) -> None:
    if r1 - r0 < SMALL_BATCH:
        _rows_small(thr, feat, left, values, roots, depths, X, r0, r1, out)
    else:
        _rows_large(thr, feat, left, values, roots, depths, X, r0, r1, block_rows, out)
    _finish(kind, den, out, r0, r1)


@nb.njit(**_OPTS)
def _score_serial(
    thr: Arr,
    feat: Arr,
    left: Arr,
    values: Arr,
    roots: Arr,
    depths: Arr,
    X: Arr,
    block_rows: int,
    kind: int,
    den: float,
) -> Arr:
    out = np.empty(X.shape[0], dtype=np.float64)
    _score_range(thr, feat, left, values, roots, depths, X, 0, X.shape[0], block_rows, kind, den, out)
    return out


@nb.njit(parallel=True, **_OPTS)
def _score_parallel(
    thr: Arr,
    feat: Arr,
    left: Arr,
    values: Arr,
    roots: Arr,
    depths: Arr,
    X: Arr,
    block_rows: int,
    kind: int,
    den: float,
    threads: int,
) -> Arr:
    n = X.shape[0]
    out = np.empty(n, dtype=np.float64)
    groups = (n + ROW_CHAINS - 1) // ROW_CHAINS  # chunks of whole lockstep groups, one per thread
    for k in nb.prange(threads):
        r0 = groups * k // threads * ROW_CHAINS
        r1 = min(n, groups * (k + 1) // threads * ROW_CHAINS)
        if r1 > r0:
            _score_range(thr, feat, left, values, roots, depths, X, r0, r1, block_rows, kind, den, out)
    return out


def make_kernel(packed: PackedForest) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``f(X)`` for C-contiguous float32 batches, choosing the serial or parallel function.

    The node fields are passed as three plain arrays because Numba's record-array access compiles
    to the same loads but its argument checks cost more per call.
    """
    thr = np.ascontiguousarray(packed.nodes["thr"])
    feat = np.ascontiguousarray(packed.nodes["feat"])
    left = np.ascontiguousarray(packed.nodes["left"])
    values, roots, depths = packed.values, packed.roots, packed.depths
    nf, kind, den = packed.n_features, packed.kind_code, float(packed.denominator)
    block_rows = max(ROW_CHAINS, min(BLOCK_BYTES // (16 * nf), 512))
    block_rows -= block_rows % ROW_CHAINS
    threads = packed.n_threads
    parallel_from = packed.parallel_min_rows if threads > 1 else np.iinfo(np.int64).max

    def kernel(X: np.ndarray) -> np.ndarray:
        if X.shape[0] >= parallel_from:
            n_threads = min(threads, (X.shape[0] + ROW_CHAINS - 1) // ROW_CHAINS, nb.config.NUMBA_NUM_THREADS)
            if n_threads > 1:
                return _score_parallel(thr, feat, left, values, roots, depths, X, block_rows, kind, den, n_threads)
        return _score_serial(thr, feat, left, values, roots, depths, X, block_rows, kind, den)

    return kernel
