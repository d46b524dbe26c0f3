# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Tree-ensemble scoring kernel in Cython: the "cython" implementation of kernels.tree_ensemble.

Same algorithm as kernels/cpp/tree_ensemble.cpp (read its header for the reasons): branch-free
steps over the packed layout from ``pack_forest``, several walks in lockstep (trees for small
batches, rows for large ones), NaN routing folded into one comparison by widening each row to
2 * n_features doubles, leaf values summed per row in tree order. Large batches are split over
OpenMP threads (setup.py compiles this module with -fopenmp); the GIL is released while scoring.
"""

cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport INFINITY, isinf, isnan
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc

import numpy as np

cnp.import_array()

ctypedef struct Node:
    double thr       # remapped threshold; +inf on leaves
    int32_t feat     # index into the widened row (feature + n_features when NaN goes left)
    int32_t left     # left child; right child is left + 1; leaves point to themselves

ctypedef struct Packed:
    const Node* nodes
    const double* values
    const int32_t* roots
    const int32_t* depths
    int n_trees
    int nf
    int kind
    double denominator
    int64_t block_rows

# Must match _INF_INPUT in kernels/tree_ensemble.py.
cdef double INF_INPUT = 1e200

cdef enum:
    ROW_CHAINS = 16     # rows walking one tree in lockstep (large batches)
    TREE_CHAINS = 8     # trees walking one row in lockstep (small batches)
    SMALL_BATCH = 8     # below this many rows the row-outer path wins
    KEEP_GIL_ROWS = 4   # at or below this many rows the GIL is kept (releasing costs more)
    BLOCK_BYTES = 65536 # widened rows per block stay in L1/L2 while all trees run

NODE_DTYPE = np.dtype([("thr", "<f8"), ("feat", "<i4"), ("left", "<i4")], align=True)


cdef inline void widen_row(const float* x, int nf, double* out) noexcept nogil:
    cdef int j
    cdef double v
    for j in range(nf):
        v = <double>x[j]
        if isnan(v):
            out[j] = INFINITY
            out[nf + j] = -INFINITY
        else:
            if isinf(v):
                v = INF_INPUT if v > 0 else -INF_INPUT
            out[j] = v
            out[nf + j] = v


cdef inline int32_t step(const Node* nodes, int32_t i, const double* x) noexcept nogil:
    cdef const Node* node = &nodes[i]
    return node.left + <int32_t>(x[node.feat] > node.thr)


cdef void score_rows_small(const Packed* p, const float* x, int64_t r0, int64_t r1,
                           double* out, double* row) noexcept nogil:
    """Row by row; TREE_CHAINS trees walk in lockstep until none of them moves."""
    cdef int32_t idx[TREE_CHAINS]
    cdef int64_t r
    cdef int t0, nt, g, t, depth, s
    cdef int32_t j, moved
    cdef double acc
    for r in range(r0, r1):
        widen_row(x + r * p.nf, p.nf, row)
        acc = 0.0
        t0 = 0
        while t0 < p.n_trees:
            nt = min(<int>TREE_CHAINS, p.n_trees - t0)
            depth = 0
            for g in range(TREE_CHAINS):
                t = t0 + min(g, nt - 1)   # pad with the last tree; its copies are ignored
                idx[g] = p.roots[t]
                depth = max(depth, p.depths[t])
            for s in range(depth):
                moved = 0
                for g in range(TREE_CHAINS):
                    j = step(p.nodes, idx[g], row)
                    moved = moved | (j ^ idx[g])
                    idx[g] = j
                if moved == 0:
                    break
            for g in range(nt):
                acc += p.values[idx[g]]
            t0 += TREE_CHAINS
        out[r] = acc


cdef void score_rows_large(const Packed* p, const float* x, int64_t r0, int64_t r1,
                           double* out, double* buf) noexcept nogil:
    """Tree-outer over blocks of rows; ROW_CHAINS rows walk one tree in lockstep."""
    cdef int32_t idx[ROW_CHAINS]
    cdef const double* xs[ROW_CHAINS]
    cdef int64_t w = 2 * p.nf
    cdef int64_t b0, b1, r, c0
    cdef int t, c, s, nr, depth
    cdef int32_t root
    b0 = r0
    while b0 < r1:
        b1 = min(r1, b0 + p.block_rows)
        for r in range(b0, b1):
            widen_row(x + r * p.nf, p.nf, buf + (r - b0) * w)
            out[r] = 0.0
        for t in range(p.n_trees):
            root = p.roots[t]
            depth = p.depths[t]
            c0 = b0
            while c0 < b1:
                nr = <int>min(<int64_t>ROW_CHAINS, b1 - c0)
                for c in range(ROW_CHAINS):
                    idx[c] = root
                    xs[c] = buf + (c0 - b0 + min(c, nr - 1)) * w   # pad with the last row
                for s in range(depth):
                    for c in range(ROW_CHAINS):
                        idx[c] = step(p.nodes, idx[c], xs[c])
                for c in range(nr):
                    out[c0 + c] += p.values[idx[c]]
                c0 += ROW_CHAINS
        b0 = b1


cdef void finish(const Packed* p, double* out, int64_t n) noexcept nogil:
    """Random forest: mean. Isolation forest: -(sum / denominator); numpy raises 2 to it."""
    cdef int64_t i
    if p.kind == 1:
        for i in range(n):
            out[i] = out[i] / p.denominator
    elif p.denominator != 0.0:
        for i in range(n):
            out[i] = out[i] / -p.denominator
    else:
        for i in range(n):
            out[i] = -1.0   # scikit-learn's value when depth sum and denominator are both zero


cdef int score_range(const Packed* p, const float* x, int64_t r0, int64_t r1, double* out) noexcept nogil:
    """Score rows [r0, r1); returns -1 if scratch memory could not be allocated."""
    cdef double* buf
    if r1 <= r0:
        return 0
    if r1 - r0 < SMALL_BATCH:
        buf = <double*>malloc(2 * p.nf * sizeof(double))
        if buf == NULL:
            return -1
        score_rows_small(p, x, r0, r1, out, buf)
    else:
        buf = <double*>malloc(p.block_rows * 2 * p.nf * sizeof(double))
        if buf == NULL:
            return -1
        score_rows_large(p, x, r0, r1, out, buf)
    free(buf)
    finish(p, out + r0, r1 - r0)
    return 0


cdef int run(const Packed* p, const float* x, int64_t n, double* out,
             int n_threads, int64_t parallel_min_rows) noexcept nogil:
    cdef int64_t groups = (n + ROW_CHAINS - 1) // ROW_CHAINS
    cdef int threads = <int>min(<int64_t>n_threads, groups)
    cdef int64_t per, chunk, n_chunks, c
    cdef int failed = 0
    if threads <= 1 or n < parallel_min_rows:
        return score_range(p, x, 0, n, out)
    # About four chunks per thread, whole lockstep groups, at most one block each, handed out
    # dynamically: on a shared machine one thread is often slower, and a static split would make
    # the batch wait for it.
    per = max(<int64_t>1, min((groups + 4 * threads - 1) // (4 * threads), p.block_rows // ROW_CHAINS))
    chunk = per * ROW_CHAINS
    n_chunks = (n + chunk - 1) // chunk
    for c in prange(n_chunks, num_threads=threads, schedule="dynamic"):
        failed += score_range(p, x, c * chunk, min(n, (c + 1) * chunk), out) != 0   # a reduction
    return -1 if failed else 0


cdef class Forest:
    """A packed forest ready to score; holds references to the arrays it points into."""

    cdef Packed p
    cdef object _arrays
    cdef readonly int n_threads
    cdef readonly int64_t parallel_min_rows

    def __cinit__(self, cnp.ndarray nodes, cnp.ndarray values, cnp.ndarray roots, cnp.ndarray depths,
                  int n_features, int kind_code, double denominator, int n_threads,
                  int64_t parallel_min_rows):
        cdef int64_t n, i
        if nodes.dtype != NODE_DTYPE or nodes.ndim != 1 or not nodes.flags.c_contiguous:
            raise ValueError("nodes must be a C-contiguous 1-D array of NODE_DTYPE")
        n = nodes.shape[0]
        if values.dtype != np.float64 or values.ndim != 1 or values.shape[0] != n or not values.flags.c_contiguous:
            raise ValueError("values must be C-contiguous float64 with one entry per node")
        for name, arr in (("roots", roots), ("depths", depths)):
            if arr.dtype != np.int32 or arr.ndim != 1 or not arr.flags.c_contiguous:
                raise ValueError(f"{name} must be a C-contiguous 1-D int32 array")
        if roots.shape[0] != depths.shape[0] or roots.shape[0] < 1:
            raise ValueError("roots and depths must be non-empty and of equal length")
        if n_features < 1 or kind_code not in (0, 1):
            raise ValueError("n_features must be positive and kind_code 0 or 1")
        # Defensive: pack_forest guarantees these, but a bad index would read out of bounds.
        feat, left, thr = nodes["feat"], nodes["left"], nodes["thr"]
        own = np.arange(n)
        leaf = left == own
        if (feat.min() < 0 or feat.max() >= 2 * n_features or np.any(leaf & (thr != np.inf))
                or np.any(~leaf & ((left <= own) | (left + 1 >= n)))
                or roots.min() < 0 or roots.max() >= n or depths.min() < 0):
            raise ValueError("packed forest has an index out of range")
        self._arrays = (nodes, values, roots, depths)
        self.p.nodes = <const Node*>cnp.PyArray_DATA(nodes)
        self.p.values = <const double*>cnp.PyArray_DATA(values)
        self.p.roots = <const int32_t*>cnp.PyArray_DATA(roots)
        self.p.depths = <const int32_t*>cnp.PyArray_DATA(depths)
        self.p.n_trees = <int>roots.shape[0]
        self.p.nf = n_features
        self.p.kind = kind_code
        self.p.denominator = denominator
        i = BLOCK_BYTES // (16 * n_features)
        i = max(<int64_t>ROW_CHAINS, min(i, <int64_t>512))
        self.p.block_rows = i - i % ROW_CHAINS
        self.n_threads = max(1, n_threads)
        self.parallel_min_rows = parallel_min_rows

    def score(self, X):
        """Score a (n, n_features) batch: float64 [n] (IF: -sum/denominator, RF: mean)."""
        cdef cnp.ndarray arr
        if type(X) is np.ndarray and X.dtype == np.float32 and X.flags.c_contiguous:
            arr = X
        else:
            arr = np.ascontiguousarray(X, dtype=np.float32)
        if arr.ndim != 2:
            raise ValueError("X must be 2-D (rows, features)")
        if arr.shape[1] != self.p.nf:
            raise ValueError(f"X has {arr.shape[1]} features, the forest expects {self.p.nf}")
        cdef int64_t n = arr.shape[0]
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, arr.shape, cnp.NPY_FLOAT64, 0)
        cdef const float* x = <const float*>cnp.PyArray_DATA(arr)
        cdef double* o = <double*>cnp.PyArray_DATA(out)
        cdef int rc
        if n <= KEEP_GIL_ROWS:
            rc = run(&self.p, x, n, o, self.n_threads, self.parallel_min_rows)
        else:
            with nogil:
                rc = run(&self.p, x, n, o, self.n_threads, self.parallel_min_rows)
        if rc != 0:
            raise MemoryError("tree-ensemble kernel could not allocate scratch memory")
        return out
