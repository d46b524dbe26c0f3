"""Numba kernels for kernels.drift: PSI binning, the two-sample KS statistic and its p-values.

Read ``kernels/drift.py`` first for the semantics; this module holds the compiled parts only.

**KS statistic over many columns without sorting them.** Sorting a 1M-row column costs ~50 ms
with NumPy here (~25 ms with a radix sort), which for 50 features alone would miss the drift
benchmark's budget. The statistic only needs the largest ECDF gap, so each current value is
instead dropped into one of ~20k buckets per feature, in one streaming pass. The bucket function
is a piecewise-linear approximation of the reference CDF (equal-width slots, each split into
sub-buckets in proportion to its reference mass), so buckets hold nearly equal reference mass
whenever the density is smooth at the scale of a slot (skewed and heavy-tailed shapes included),
and finding one takes a multiply and one table load. Any monotone bucket function would be
*correct* (point masses or a far-off current window only cost more buckets to open); this one
keeps buckets small and cheap.
Because every value of a lower bucket lies below every value of a higher one, the gap at each
bucket boundary is an attained ECDF gap, known from prefix counts alone; inside a bucket the gap
can exceed its boundary values by at most the bucket's own mass. Only buckets whose bound
reaches the best boundary gap are opened: their current values are gathered (a counting sort by
bucket) and ranked by binary search in the bucket's slice of the sorted reference; between two
consecutive reference values the gap is monotone, so per-rank counts give every extreme without
sorting anything. The result is the exact statistic, the same integer numerator and the same
float as scipy, for one pass over the data plus a small gather.

**P-values.** The exact two-sided distribution ports scipy 1.17's ``_compute_prob_outside_square``
(equal sizes) and ``_compute_outer_prob_inside_method`` (Hodges' inside method with Viehmann's
recursion for 1 - p); the asymptotic path is ``kstwo.sf(d, round(m n / (m + n)))``, scipy's
``_kolmogn`` (Simard & L'Ecuyer's choice among Ruben-Gambino, Durbin/Marsaglia-Tsang-Wang matrix
power, Pomeranz, Pelz-Good and 2 x one-sided Smirnov). Branch thresholds and operation order are
kept so results match scipy to ~1e-12. Two deliberate differences, both documented where they
live: the Durbin matrix power is rescaled by exact powers of two (scipy relies on ``longdouble``
for range), and the one-sided Smirnov sum runs in log space in double precision (scipy's C code
uses double-double), which keeps ~1e-10 relative accuracy where it is used (p < 0.03).

``fastmath`` stays off: the p-values must match scipy's rounding, not approximately.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_OPTS = {"nogil": True, "cache": True, "fastmath": False, "boundscheck": False}

#: KS bucket layout (see ks_index): SLOTS equal-width slots over the reference's central range,
#: each split into sub-buckets in proportion to its reference mass, ~TARGET buckets in all, so a
#: bucket holds ~1/TARGET of the reference where the density is smooth at the slot scale. Small
#: buckets keep the number that must be opened small; the per-feature table is 32 KB.
SLOTS = 4096
TARGET = 16384
#: Largest bucket id: 0 (below the reference minimum), 1 (below the slot axis), at most SLOTS +
#: TARGET sub-buckets, the top one, and one above the reference maximum.
MAX_BUCKET = SLOTS + TARGET + 3
#: Bucket id of a NaN current value: in range of every per-bucket array, never opened.
NAN_BUCKET = MAX_BUCKET + 1
#: Entries per feature in per-bucket arrays (ids 0 .. NAN_BUCKET, and one past the end).
WIDTH = NAN_BUCKET + 2
_MAX_FLOAT = 1.7976931348623157e308

#: scipy's auto rule: exact when max(n1, n2) <= MAX_AUTO_N (scipy.stats._stats_py.ks_2samp).
MAX_AUTO_N = 10000
_INT32_MAX = 2147483647.0

METHOD_AUTO, METHOD_EXACT, METHOD_ASYMP = 0, 1, 2
USED_EXACT, USED_ASYMP = 0, 1
WARN_NONE, WARN_LCM, WARN_EXACT_FAILED = 0, 1, 2

_E128 = 128
_EP128 = 2.0**128
_EM128 = 2.0**-128
_SQRT2PI = math.sqrt(2 * math.pi)
_LOG_2PI = math.log(2 * math.pi)
_MIN_LOG = -708.0
_SQRT3 = math.sqrt(3.0)
_PI_SQUARED = math.pi**2
_PI_FOUR = math.pi**4
_PI_SIX = math.pi**6
_STIRLING = np.array(
    [
        -2.955065359477124183e-2,
        6.4102564102564102564e-3,
        -1.9175269175269175269e-3,
        8.4175084175084175084e-4,
        -5.952380952380952381e-4,
        7.9365079365079365079e-4,
        -2.7777777777777777778e-3,
        8.3333333333333333333e-2,
    ]
)
_CEPHES_MINLOG = -7.083964185322641e2
_SMIRNOV_MAX_COMPUTE_N = 1000000
_DBL_EPS = 2.220446049250313e-16


# ------------------------------------------------------------------------------------------------
# PSI binning
# ------------------------------------------------------------------------------------------------


@nb.njit(inline="always", **_OPTS)
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


@nb.njit(parallel=True, **_OPTS)
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


# ------------------------------------------------------------------------------------------------
# KS statistic: merge walks
# ------------------------------------------------------------------------------------------------


@nb.njit(inline="always", **_OPTS)
def _update(i: int, j: int, n1: int, n2: int, n1g: int, n2g: int, best: int, bestf: float) -> tuple[int, float]:
    """Fold the ECDF gap after i reference and j current values into (best numerator, best float).

    The exact gap is ``|i * n2g - j * n1g| / lcm``; the float is scipy's ``|i / n1 - j / n2|``.
    Distinct exact gaps differ by >= 1/lcm, far above rounding, so the float maximum is the
    largest float among the points that reach the exact maximum.
    """
    d = i * n2g - j * n1g
    if d < 0:
        d = -d
    if d > best:
        return d, abs(i / n1 - j / n2)
    if d == best:
        f = abs(i / n1 - j / n2)
        if f > bestf:
            return best, f
    return best, bestf


@nb.njit(**_OPTS)
def ks_walk(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """KS gap of two sorted NaN-free samples: (max |i * n2g - j * n1g|, scipy's float statistic).

    Walks the merged order one distinct value at a time (a tie group is consumed from both sides
    before the gap is read, as the ECDFs count ``<= x``).
    """
    n1 = a.shape[0]
    n2 = b.shape[0]
    g = math.gcd(n1, n2)
    n1g = n1 // g
    n2g = n2 // g
    best = 0
    bestf = 0.0
    i = 0
    j = 0
    while i < n1 and j < n2:
        v = a[i] if a[i] <= b[j] else b[j]
        while i < n1 and a[i] <= v:
            i += 1
        while j < n2 and b[j] <= v:
            j += 1
        best, bestf = _update(i, j, n1, n2, n1g, n2g, best, bestf)
    # Past the end of one sample the gap shrinks monotonically: nothing larger remains.
    return best, bestf


@nb.njit(inline="always", **_OPTS)
def _bucket(
    x: float,
    j: int,
    lo_v: np.ndarray,
    scale: np.ndarray,
    table: np.ndarray,
    top: np.ndarray,
    r_min: np.ndarray,
    r_max: np.ndarray,
) -> int:
    """Bucket of a non-NaN value x for feature j (see :func:`ks_index`); monotone in x.

    ``t = (x - lo_v) * scale`` places x on the slot axis. Below it: bucket 1, or 0 below the
    reference minimum; beyond it: ``top``, or ``top + 1`` above the reference maximum. Otherwise
    slot ``s = floor(t)`` gives ``table[s] = (first bucket, sub-buckets)`` and the fraction
    ``t - s`` (exact) picks the sub-bucket. Every step is monotone under rounding, which is all
    correctness needs; there is no data-dependent search, so the pass costs a few ns per value.
    ``lo_v`` is finite and ``scale`` positive and finite, so t is never NaN.
    """
    t = (x - lo_v[j]) * scale[j]
    if not (t >= 0.0):
        return 0 if x < r_min[j] else 1
    if t >= SLOTS:
        return top[j] + 1 if x > r_max[j] else top[j]
    s = int(t)
    n_sub = table[j, s, 1]
    sub = int((t - s) * n_sub)
    return table[j, s, 0] + (sub if sub < n_sub else n_sub - 1)


@nb.njit(parallel=True, **_OPTS)
def ks_index(ref: np.ndarray) -> tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray
]:  # fmt: skip
    """Bucket index of sorted reference columns ``ref[features, rows]`` (NaN last).

    Returns ``(n_valid, status, lo_v, scale, table, top, r_min, r_max, ref_lo)``:

    * ``n_valid[j]``: non-NaN reference values; ``status[j]``: 0 ok, 1 not sorted (or NaN not last).
    * ``lo_v``, ``scale``: the slot axis spans the reference quantiles at 1/SLOTS and
      1 - 1/SLOTS; ``r_min``, ``r_max``: the reference's extremes. Buckets 0 and ``top + 1``
      (beyond the extremes) hold no reference value, so they are never opened: a feature whose
      current values all left the reference's range costs no more than any other.
    * ``table[j, s] = (first bucket of slot s, its sub-bucket count)``, the count proportional to
      the reference values in the slot (at least 1): together a piecewise-linear approximation
      of the reference CDF with ~TARGET nearly equal-mass buckets.
    * ``ref_lo[j, b]``: reference values in buckets below b, computed with the same
      :func:`_bucket`, so bucket b's reference values are ``ref[j, ref_lo[b]:ref_lo[b + 1]]``.
    """
    n_features, n_rows = ref.shape
    n_valid = np.zeros(n_features, dtype=np.int64)
    status = np.zeros(n_features, dtype=np.int64)
    # Defaults (kept for columns without values): one sub-bucket per slot, a valid bucket function.
    lo_v = np.zeros(n_features, dtype=np.float64)
    scale = np.ones(n_features, dtype=np.float64)
    table = np.ones((n_features, SLOTS, 2), dtype=np.int32)
    top = np.full(n_features, SLOTS + 2, dtype=np.int64)
    r_min = np.zeros(n_features, dtype=np.float64)
    r_max = np.zeros(n_features, dtype=np.float64)
    ref_lo = np.zeros((n_features, WIDTH), dtype=np.int64)
    for j in nb.prange(n_features):
        for s in range(SLOTS):
            table[j, s, 0] = 2 + s
        nv = n_rows
        while nv > 0 and ref[j, nv - 1] != ref[j, nv - 1]:
            nv -= 1
        n_valid[j] = nv
        for i in range(1, nv):
            if not (ref[j, i] >= ref[j, i - 1]):
                status[j] = 1
                break
        if nv == 0 or status[j] != 0:
            continue
        r_min[j] = ref[j, 0]
        r_max[j] = ref[j, nv - 1]
        # The slot axis must start at a finite value (x - lo_v is then never NaN): clip the
        # quantile indices to the finite values between leading -inf and trailing +inf.
        i0 = 0
        while i0 < nv and ref[j, i0] == -np.inf:
            i0 += 1
        i1 = nv - 1
        while i1 >= i0 and ref[j, i1] == np.inf:
            i1 -= 1
        tail = nv // SLOTS
        a = 0.0
        b = 0.0
        if i0 <= i1:
            a = ref[j, min(max(tail, i0), i1)]
            b = ref[j, max(min(nv - 1 - tail, i1), i0)]
        width = b - a
        if not (width > 0.0):
            width = max(abs(a), 1.0)  # constant centre: any positive width is correct
        sc = SLOTS / width
        if not (sc > 0.0 and math.isfinite(sc)):
            sc = SLOTS / _MAX_FLOAT
        lo_v[j] = a
        scale[j] = sc
        # Reference values per slot (the sorted column is walked once), then sub-bucket counts.
        target = min(TARGET, nv)
        per_slot = np.zeros(SLOTS, dtype=np.int64)
        for i in range(nv):
            t = (ref[j, i] - a) * sc
            if 0.0 <= t < SLOTS:
                per_slot[int(t)] += 1
        first = 2
        for s in range(SLOTS):
            n_sub = max(1, -(-per_slot[s] * target // nv))  # ceil, so the total stays <= SLOTS + TARGET
            table[j, s, 0] = first
            table[j, s, 1] = n_sub
            first += n_sub
        top[j] = first
        for i in range(nv):
            ref_lo[j, _bucket(ref[j, i], j, lo_v, scale, table, top, r_min, r_max) + 1] += 1
        for p in range(1, WIDTH):
            ref_lo[j, p] += ref_lo[j, p - 1]
    return n_valid, status, lo_v, scale, table, top, r_min, r_max, ref_lo


@nb.njit(parallel=True, **_OPTS)
def _ks_pass_buckets(
    X: np.ndarray,
    col_major: bool,
    lo_v: np.ndarray,
    scale: np.ndarray,
    table: np.ndarray,
    top: np.ndarray,
    r_min: np.ndarray,
    r_max: np.ndarray,
    n_chunks: int,
    bucket_ids: np.ndarray,
) -> None:
    """Pass 1: the bucket of every current value, ``NAN_BUCKET`` for NaN, into ``bucket_ids[features, rows]``.

    Row-major input is read along its rows (all features of a row, then the next row) and the
    ids are written to one stream per feature, so the per-feature pass that follows reads
    memory forwards (a feature-blocked order over row-major input measured 3x slower here).
    """
    n_features = lo_v.shape[0]
    n_rows = X.shape[1] if col_major else X.shape[0]
    for c in nb.prange(n_chunks):
        r0 = c * n_rows // n_chunks
        r1 = (c + 1) * n_rows // n_chunks
        if col_major:
            for j in range(n_features):
                for i in range(r0, r1):
                    x = X[j, i]
                    if x != x:
                        bucket_ids[j, i] = NAN_BUCKET
                    else:
                        bucket_ids[j, i] = _bucket(x, j, lo_v, scale, table, top, r_min, r_max)
        else:
            for i in range(r0, r1):
                for j in range(n_features):
                    x = X[i, j]
                    if x != x:
                        bucket_ids[j, i] = NAN_BUCKET
                    else:
                        bucket_ids[j, i] = _bucket(x, j, lo_v, scale, table, top, r_min, r_max)


@nb.njit(parallel=True, **_OPTS)
def _ks_per_feature(
    ref: np.ndarray,
    X: np.ndarray,
    col_major: bool,
    bucket_ids: np.ndarray,
    n_valid: np.ndarray,
    top: np.ndarray,
    ref_lo: np.ndarray,
    method: int,
    stat: np.ndarray,
    pvalue: np.ndarray,
    used: np.ndarray,
    warn: np.ndarray,
    n_cur: np.ndarray,
) -> None:
    """Pass 2, one feature per task: bucket counts, boundary gaps, opened buckets, p-value.

    1. Count current values per bucket; ``cur_lo[b]`` counts those in buckets below b. All values
       of lower buckets lie below all values of bucket b, so ``(ref_lo[b], cur_lo[b])`` is an
       attained ECDF gap (the ECDF value at the largest point below the boundary).
    2. Inside bucket b the gap cannot exceed ``max(ref_lo[b+1] - cur_lo[b], cur_lo[b+1] -
       ref_lo[b])`` (scaled), so only buckets whose bound reaches the best boundary gap and that
       hold values from both samples are opened (with one side only, the gap is monotone
       across the bucket). Their current values are gathered, grouped by bucket.
    3. Each gathered value is ranked in the bucket's slice of the sorted reference (binary
       search). Between two consecutive distinct reference values only the current count moves,
       so the gap is monotone there: per-rank counts give every extreme without sorting.
    One parallel task per feature keeps this to one launch: on a busy shared machine each
    parallel launch costs milliseconds of thread wake-up.
    """
    n_features, n_rows = bucket_ids.shape
    for j in nb.prange(n_features):
        counts = np.zeros(WIDTH, dtype=np.int64)
        for i in range(n_rows):
            counts[bucket_ids[j, i]] += 1
        last = top[j] + 1
        cur_lo = np.zeros(last + 2, dtype=np.int64)
        for b in range(last + 1):
            cur_lo[b + 1] = cur_lo[b] + counts[b]
        n1 = n_valid[j]
        n2 = cur_lo[last + 1]
        n_cur[j] = n2
        if n1 == 0 or n2 == 0:
            stat[j] = np.nan
            pvalue[j] = np.nan
            used[j] = -1
            continue
        g = math.gcd(n1, n2)
        n1g = n1 // g
        n2g = n2 // g
        bi = 0
        bf = 0.0
        for b in range(1, last + 1):
            bi, bf = _update(ref_lo[j, b], cur_lo[b], n1, n2, n1g, n2g, bi, bf)
        if bi < n1g * n2:  # else complete separation: the gap is 1 (float 1.0 exactly)
            start = np.full(last + 1, -1, dtype=np.int64)
            size = 0
            for b in range(last + 1):
                if counts[b] == 0 or ref_lo[j, b + 1] == ref_lo[j, b]:
                    continue
                up = ref_lo[j, b + 1] * n2g - cur_lo[b] * n1g
                down = cur_lo[b + 1] * n1g - ref_lo[j, b] * n2g
                if max(up, down) >= bi:
                    start[b] = size
                    size += counts[b]
            if size > 0:
                buf = np.empty(size, dtype=np.float64)
                fill = start.copy()
                for i in range(n_rows):
                    b = bucket_ids[j, i]
                    if b <= last and fill[b] >= 0:
                        buf[fill[b]] = (X[j, i] if col_major else X[i, j]) + 0.0  # + 0.0: -0.0 -> 0.0
                        fill[b] += 1
                for b in range(last + 1):
                    if start[b] >= 0:
                        bi, bf = _open_bucket(ref, j, ref_lo[j, b], ref_lo[j, b + 1], cur_lo[b], buf,
                                              start[b], start[b] + counts[b], n1, n2, n1g, n2g, bi, bf)  # fmt: skip
        d, p, u, w = ks_pvalue(n1, n2, bi, bf, method)
        stat[j] = d
        pvalue[j] = p
        used[j] = u
        warn[j] = w


@nb.njit(**_OPTS)
def _open_bucket(
    ref: np.ndarray,
    j: int,
    i0: int,
    i1: int,
    j0: int,
    buf: np.ndarray,
    g0: int,
    g1: int,
    n1: int,
    n2: int,
    n1g: int,
    n2g: int,
    bi: int,
    bf: float,
) -> tuple[int, float]:
    """Fold the gaps inside one bucket: reference ``ref[j, i0:i1]`` (sorted), current ``buf[g0:g1]``.

    ``j0`` current values lie below the bucket. ``cnt[r]`` counts current values with r slice
    values <= them, ``tie[r]`` those equal to slice value r - 1.
    """
    m = i1 - i0
    cnt = np.zeros(m + 1, dtype=np.int64)
    tie = np.zeros(m + 1, dtype=np.int64)
    r_lo = ref[j, i0]
    r_hi = ref[j, i1 - 1]
    for q in range(g0, g1):
        x = buf[q]
        if x > r_hi:  # fast paths: outside the slice
            cnt[m] += 1
            continue
        if x < r_lo:
            cnt[0] += 1
            continue
        lo = 0
        hi = m
        while lo < hi:
            mid = (lo + hi) >> 1
            if ref[j, i0 + mid] <= x:
                lo = mid + 1
            else:
                hi = mid
        cnt[lo] += 1
        if lo > 0 and ref[j, i0 + lo - 1] == x:
            tie[lo] += 1
    # Extremes between consecutive distinct reference values: the reference value's own point
    # (with the current values tied to it) and the last point before the next reference value.
    jj = j0 + cnt[0]
    bi, bf = _update(i0, jj, n1, n2, n1g, n2g, bi, bf)
    for r in range(1, m + 1):
        if r < m and ref[j, i0 + r] == ref[j, i0 + r - 1]:
            continue  # inside a tie group of the reference: no value ranks here
        bi, bf = _update(i0 + r, jj + tie[r], n1, n2, n1g, n2g, bi, bf)
        jj += cnt[r]
        bi, bf = _update(i0 + r, jj, n1, n2, n1g, n2g, bi, bf)
    return bi, bf


def ks_columns(
    ref: np.ndarray, index: tuple, X: np.ndarray, col_major: bool, method: int, n_chunks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """KS of every column of ``X`` against the sorted reference rows ``ref[features, rows]``.

    ``index`` is :func:`ks_index`'s result for ``ref``; ``X`` is C-contiguous float64,
    ``[rows, features]``, or ``[features, rows]`` when ``col_major``. Returns ``(statistic,
    pvalue, used, warn, n_ref, n_cur)``: used is 0 exact / 1 asymptotic / -1 no data; warn as in
    :func:`ks_pvalue`. Plain Python on purpose: it only sequences the two compiled passes.
    """
    n_valid, _status, lo_v, scale, table, top, r_min, r_max, ref_lo = index
    n_features = ref.shape[0]
    n_rows = X.shape[1] if col_major else X.shape[0]
    bucket_ids = np.empty((n_features, n_rows), dtype=np.uint16)
    _ks_pass_buckets(X, col_major, lo_v, scale, table, top, r_min, r_max, n_chunks, bucket_ids)
    stat = np.empty(n_features, dtype=np.float64)
    pvalue = np.empty(n_features, dtype=np.float64)
    used = np.empty(n_features, dtype=np.int64)
    warn = np.zeros(n_features, dtype=np.int64)
    n_cur = np.empty(n_features, dtype=np.int64)
    _ks_per_feature(ref, X, col_major, bucket_ids, n_valid, top, ref_lo, method, stat, pvalue, used, warn, n_cur)
    return stat, pvalue, used, warn, n_valid, n_cur


# ------------------------------------------------------------------------------------------------
# Exact two-sided distribution (scipy.stats._stats_py / _stats_pythran)
# ------------------------------------------------------------------------------------------------


@nb.njit(**_OPTS)
def prob_outside_square(n: int, h: int) -> float:
    """P(D_{n,n} >= h/n): 2 * (A0 - A1 + ...) as a Horner-like product (scipy's formulation)."""
    P = 0.0
    k = n // h
    while k >= 0:
        p1 = 1.0
        for j in range(h):
            p1 = (n - k * h - j) * p1 / (n + k * h + j + 1)
        P = p1 * (1.0 - P)
        k -= 1
    return 2 * P


@nb.njit(**_OPTS)
def outer_prob_inside(m: int, n: int, g: int, h: int) -> float:
    """P(D_{m,n} >= h/lcm) for m != n: lattice paths leaving the band, recursing on 1 - p.

    Hodges' inside method with Viehmann's recursion (arXiv:2102.08037), one sliding column of A.
    """
    if m < n:
        m, n = n, m
    mg = m // g
    ng = n // g
    minj = 0
    maxj = min(math.ceil(h / mg), n + 1)
    curlen = maxj - minj
    len_a = min(2 * maxj + 2, n + 1)
    A = np.ones(len_a)
    A[minj:maxj] = 0.0
    for i in range(1, m + 1):
        lastminj = minj
        lastlen = curlen
        minj = max(math.floor((ng * i - h) / mg) + 1, 0)
        minj = min(minj, n)
        maxj = min(math.ceil((ng * i + h) / mg), n + 1)
        if maxj <= minj:
            return 1.0
        val = 0.0 if minj == 0 else 1.0
        for jj in range(maxj - minj):
            j = jj + minj
            val = (A[jj + minj - lastminj] * i + val * j) / (i + j)
            A[jj] = val
        curlen = maxj - minj
        if lastlen > curlen:
            stop = min(maxj - minj + (lastlen - curlen), len_a)
            for q in range(maxj - minj, stop):
                A[q] = 1.0
    return A[maxj - minj - 1]


# ------------------------------------------------------------------------------------------------
# kstwo: the two-sided one-sample KS distribution (scipy.stats._ksstats)
# ------------------------------------------------------------------------------------------------


@nb.njit(inline="always", **_OPTS)
def _clip(p: float) -> float:
    return min(max(p, 0.0), 1.0)


@nb.njit(**_OPTS)
def _log_nfactorial_div_n_pow_n(n: int) -> float:
    rn = 1.0 / n
    x = rn / n
    y = 0.0
    for c in _STIRLING:
        y = y * x + c
    return math.log(n) / 2 - n + _LOG_2PI / 2 + rn * y


@nb.njit(**_OPTS)
def _kolmogn_dmtw_cdf(n: int, d: float) -> float:
    """Pr(D_n <= d): Durbin's matrix, Marsaglia-Tsang-Wang power by squaring.

    scipy keeps H and its accumulated power in float64 and relies on ``longdouble`` only for the
    final scalar; here both matrices are rescaled by 2**-128 whenever their (k, k) entry passes
    2**128. Scaling by a power of two is exact, so results are unchanged where scipy's float64
    stays finite, and stay finite where it would not.
    """
    if d >= 1.0:
        return 1.0
    nd = n * d
    if nd <= 0.5:
        return 0.0
    k = math.ceil(nd)
    h = k - nd
    m = 2 * k - 1
    H = np.zeros((m, m))
    v = np.empty(m)
    w = np.empty(m)
    for i in range(m):
        v[i] = 1.0 - math.pow(h, i + 1)
    fac = 1.0
    for j in range(1, m + 1):
        w[j - 1] = fac
        fac /= j
        v[j - 1] *= fac
    tt = math.pow(max(2 * h - 1.0, 0.0), m) - 2 * math.pow(h, m)
    v[m - 1] = (1.0 + tt) * fac
    for i in range(1, m):
        for r in range(i - 1, m):
            H[r, i] = w[r - i + 1]
    for r in range(m):
        H[r, 0] = v[r]
    for c in range(m):
        H[m - 1, c] = v[m - 1 - c]
    Hpwr = np.eye(m)
    nn = n
    expnt = 0
    hexpnt = 0
    while nn > 0:
        if nn % 2:
            Hpwr = np.dot(Hpwr, H)
            expnt += hexpnt
            if abs(Hpwr[k - 1, k - 1]) > _EP128:
                Hpwr *= _EM128
                expnt += _E128
        H = np.dot(H, H)
        hexpnt *= 2
        if abs(H[k - 1, k - 1]) > _EP128:
            H *= _EM128
            hexpnt += _E128
        nn = nn // 2
    p = Hpwr[k - 1, k - 1]
    for i in range(1, n + 1):
        p = i * p / n
        if abs(p) < _EM128:
            p *= _EP128
            expnt -= _E128
    if expnt != 0:
        p = math.ldexp(p, expnt)
    return _clip(p)


@nb.njit(**_OPTS)
def _pomeranz_j1j2(i: int, n: int, ll: int, ceilf: int, roundf: int) -> tuple[int, int]:
    if i == 0:
        j1 = -ll - ceilf - 1
        j2 = ll + ceilf - 1
    else:
        ip1div2 = (i + 1) // 2
        ip1mod2 = (i + 1) % 2
        if ip1mod2 == 0:
            if ip1div2 == n + 1:
                j1 = n - ll - ceilf - 1
                j2 = n + ll + ceilf - 1
            else:
                j1 = ip1div2 - 1 - ll - roundf - 1
                j2 = ip1div2 + ll - 1 + ceilf - 1
        else:
            j1 = ip1div2 - 1 - ll - 1
            j2 = ip1div2 + ll + roundf - 1
    return max(j1 + 2, 0), min(j2, n)


@nb.njit(**_OPTS)
def _kolmogn_pomeranz_cdf(n: int, x: float) -> float:
    """Pr(D_n <= x) by Pomeranz's recursion (convolutions written out, same terms as np.convolve)."""
    t = n * x
    ll = math.floor(t)
    f = 1.0 * (t - ll)
    g = min(f, 1.0 - f)
    ceilf = 1 if f > 0 else 0
    roundf = 1 if f > 0.5 else 0
    npwrs = 2 * (ll + 1)
    gpower = np.empty(npwrs)
    twogpower = np.empty(npwrs)
    onem2gpower = np.empty(npwrs)
    gpower[0] = 1.0
    twogpower[0] = 1.0
    onem2gpower[0] = 1.0
    expnt = 0
    g_over_n = g / n
    two_g_over_n = 2 * g / n
    one_minus_two_g_over_n = (1 - 2 * g) / n
    for m in range(1, npwrs):
        gpower[m] = gpower[m - 1] * g_over_n / m
        twogpower[m] = twogpower[m - 1] * two_g_over_n / m
        onem2gpower[m] = onem2gpower[m - 1] * one_minus_two_g_over_n / m
    V0 = np.zeros(npwrs)
    V1 = np.zeros(npwrs)
    V1[0] = 1.0
    V0s = 0
    V1s = 0
    j1, j2 = _pomeranz_j1j2(0, n, ll, ceilf, roundf)
    for i in range(1, 2 * n + 2):
        k1 = j1
        V0, V1 = V1, V0
        V0s, V1s = V1s, V0s
        V1[:] = 0.0
        j1, j2 = _pomeranz_j1j2(i, n, ll, ceilf, roundf)
        if i == 1 or i == 2 * n + 1:
            pwrs = gpower
        elif i % 2:
            pwrs = twogpower
        else:
            pwrs = onem2gpower
        ln2 = j2 - k1 + 1
        if ln2 > 0:
            a0 = k1 - V0s
            la = min(ln2, npwrs - a0)
            lb = min(ln2, npwrs)
            conv_start = j1 - k1
            conv_len = j2 - j1 + 1
            vmax = -np.inf
            for r in range(conv_len):
                kk = conv_start + r
                s = 0.0
                for ii in range(max(0, kk - lb + 1), min(kk, la - 1) + 1):
                    s += V0[a0 + ii] * pwrs[kk - ii]
                V1[r] = s
            for r in range(npwrs):
                vmax = max(vmax, V1[r])
            if 0 < vmax < _EM128:
                V1 *= _EP128
                expnt -= _E128
            V1s = V0s + j1 - k1
    ans = V1[n - V1s]
    for m in range(1, n + 1):
        if abs(ans) > _EP128:
            ans *= _EM128
            expnt += _E128
        ans *= m
    if expnt != 0:
        ans = math.ldexp(ans, expnt)
    return _clip(ans)


@nb.njit(**_OPTS)
def _kolmogn_pelzgood_cdf(n: int, x: float) -> float:
    """Pelz-Good approximation to Pr(D_n <= x) (unclipped, as scipy returns it to its caller)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    z = math.sqrt(n) * x
    zsquared = z**2
    zthree = z**3
    zfour = z**4
    zsix = z**6
    qlog = -_PI_SQUARED / 8 / zsquared
    if qlog < _MIN_LOG:
        return 0.0
    q = math.exp(qlog)
    k1a = -zsquared
    k1b = _PI_SQUARED / 4
    k2a = 6 * zsix + 2 * zfour
    k2b = (2 * zfour - 5 * zsquared) * _PI_SQUARED / 4
    k2c = _PI_FOUR * (1 - 2 * zsquared) / 16
    k3d = _PI_SIX * (5 - 30 * zsquared) / 64
    k3c = _PI_FOUR * (-60 * zsquared + 212 * zfour) / 16
    k3b = _PI_SQUARED * (135 * zfour - 96 * zsix) / 4
    k3a = -30 * zsix - 90 * z**8
    K0 = 0.0
    K1 = 0.0
    K2 = 0.0
    K3 = 0.0
    maxk = math.ceil(16 * z / math.pi)
    for k in range(maxk, 0, -1):
        m = 2 * k - 1
        msquared = float(m) ** 2
        mfour = float(m) ** 4
        msix = float(m) ** 6
        qpower = math.pow(q, 8 * k)
        K0 = K0 * qpower + 1.0
        K1 = K1 * qpower + (k1a + k1b * msquared)
        K2 = K2 * qpower + (k2a + k2b * msquared + k2c * mfour)
        K3 = K3 * qpower + (k3a + k3b * msquared + k3c * mfour + k3d * msix)
    K0 = K0 * q * _SQRT2PI / z
    K1 = K1 * q * _SQRT2PI / (6 * zfour)
    K2 = K2 * q * _SQRT2PI / (72 * z**7)
    K3 = K3 * q * _SQRT2PI / (6480 * z**10)
    q = math.exp(-_PI_SQUARED / 2 / zsquared)
    sqrt3z = _SQRT3 * z
    k2extra = 0.0
    k3extra = 0.0
    for k in range(maxk, 0, -1):
        ksq = float(k * k)
        qp = math.pow(q, ksq)
        kspi = math.pi * k
        k2extra += ksq * qp
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ksq * qp
    k2extra *= _PI_SQUARED * _SQRT2PI / (-36 * zthree)
    K2 += k2extra
    k3extra *= _PI_SQUARED * _SQRT2PI / (216 * zsix)
    K3 += k3extra
    nf = n * 1.0
    K1 /= math.pow(nf, 0.5)
    K2 /= math.pow(nf, 1.0)
    K3 /= math.pow(nf, 1.5)
    return 0.0 + K0 + K1 + K2 + K3


@nb.njit(inline="always", **_OPTS)
def _two_prod(a: float, b: float) -> tuple[float, float]:
    """a * b as an unevaluated sum p + e, exactly (Dekker/Veltkamp; no FMA needed)."""
    p = a * b
    split = 134217729.0
    t = split * a
    ah = t - (t - a)
    al = a - ah
    t = split * b
    bh = t - (t - b)
    bl = b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


@nb.njit(**_OPTS)
def smirnov_sf(n: int, x: float) -> float:
    """One-sided Smirnov survival function P(D+_n >= x) (scipy.special.smirnov).

    The Birnbaum-Tingey sum x * sum_v C(n, v) (1 - x - v/n)^(n - v) (x + v/n)^(v - 1), with
    cephes' special cases, early stop and n > 1e6 approximation. cephes sums in double-double;
    here each term is formed in log space from n(1 - x - v/n) and n(x + v/n) computed from an exact
    split of n*x, and summed with compensation: ~1e-10 relative error for n ~ 1e6, ample for the
    p-value tolerance. cephes' "upper sum" branch (x <= 0.5/sqrt(n)) is not reproduced: kolmogn
    only asks for x >= 0.5 or n x^2 >= 2.2.
    """
    if not (n > 0 and x >= 0.0 and x <= 1.0):
        return np.nan
    if n == 1:
        return 1.0 - x
    if x == 0.0:
        return 1.0
    if x == 1.0:
        return 0.0
    p, e = _two_prod(float(n), x)
    fl = math.floor(p)
    alpha = (p - fl) + e
    if alpha < 0.0:
        fl -= 1.0
        alpha += 1.0
    if alpha >= 1.0:
        fl += 1.0
        alpha -= 1.0
    nxfl = int(fl)
    if nxfl == 0 or (nxfl == 1 and alpha == 0.0):
        return 1.0 - x * math.pow(1.0 + x, n - 1)
    if -2 * n * x * x < _CEPHES_MINLOG:
        return 0.0
    if nxfl >= n - 1:
        return math.pow(1.0 - x, n)
    if n > _SMIRNOV_MAX_COMPUTE_N:
        logp = -math.pow(6.0 * n * x + 1, 2) / 18.0 / n
        if logp < -math.log(2.0):
            return math.exp(logp)
        return 1.0 - (-math.expm1(logp))
    n_terms = n - nxfl
    vmid = n // 2
    logc = 0.0
    logc_err = 0.0
    total = 0.0
    total_err = 0.0
    half = 0.5 * n
    for v in range(n_terms):
        up = float(n - v - nxfl) - alpha  # n (1 - x - v/n)
        lo = float(v + nxfl) + alpha  # n (x + v/n)
        la = math.log1p(-lo / n) if lo < half else math.log(up / n)
        lb = math.log1p(-up / n) if up < half else math.log(lo / n)
        a = math.exp((logc + logc_err) + (n - v) * la + (v - 1) * lb)
        if a > 0.0:
            s = total + a
            if abs(total) >= a:
                total_err += (total - s) + a
            else:
                total_err += (a - s) + total
            total = s
            if v != n_terms - 1 and 4 * (n_terms - v) * a < _DBL_EPS * (total + total_err):
                break
        elif v > vmid:
            break
        step = math.log((n - v) / (v + 1.0))
        s = logc + step
        if abs(logc) >= abs(step):
            logc_err += (logc - s) + step
        else:
            logc_err += (step - s) + logc
        logc = s
    return _clip(x * (total + total_err))


@nb.njit(**_OPTS)
def kolmogn_sf(n: int, x: float) -> float:
    """P(D_n > x) for the two-sided one-sample KS statistic: scipy's ``_kolmogn(n, x, cdf=False)``."""
    if x >= 1.0:
        return 0.0
    if x <= 0.0:
        return 1.0
    t = n * x
    if t <= 1.0:
        if t <= 0.5:
            return 1.0
        if n <= 140:
            prob = 1.0
            for k in range(1, n + 1):
                prob *= k * (1.0 / n) * (2 * t - 1)
        else:
            prob = math.exp(_log_nfactorial_div_n_pow_n(n) + n * math.log(2 * t - 1))
        return _clip(1.0 - prob)
    if t >= n - 1:
        return _clip(2 * math.pow(1.0 - x, n))
    if x >= 0.5:
        return _clip(2 * smirnov_sf(n, x))
    nxsquared = t * x
    if n <= 140:
        if nxsquared <= 0.754693:
            return _clip(1.0 - _kolmogn_dmtw_cdf(n, x))
        if nxsquared <= 4:
            return _clip(1.0 - _kolmogn_pomeranz_cdf(n, x))
        return _clip(2 * smirnov_sf(n, x))
    if nxsquared >= 370.0:
        return 0.0
    if nxsquared >= 2.2:
        return _clip(2 * smirnov_sf(n, x))
    cdf = _kolmogn_dmtw_cdf(n, x) if n <= 100000 and n * math.pow(x, 1.5) <= 1.4 else _kolmogn_pelzgood_cdf(n, x)
    return _clip(1.0 - cdf)


@nb.njit(**_OPTS)
def kstwo_sf(d: float, n: float) -> float:
    """``scipy.stats.kstwo.sf(d, n)``: NaN unless n is an integer >= 1; 1 at or below the support."""
    if not (n >= 1.0) or n != math.floor(n) or d != d:
        return np.nan
    if d <= 0.5 / n:
        return 1.0
    if d >= 1.0:
        return 0.0
    return kolmogn_sf(int(n), d)


@nb.njit(**_OPTS)
def ks_pvalue(n1: int, n2: int, h: int, d: float, method: int) -> tuple[float, float, int, int]:
    """Statistic and two-sided p-value from the gap numerator h and scipy's float gap d.

    Returns ``(statistic, pvalue, used, warn)``, following scipy's ``ks_2samp`` step by step:
    auto is exact when max(n1, n2) <= 10000; an explicit exact request with lcm too large for
    int32 (warn 1) or an exact result outside [0, 1] (warn 2, which scipy hits for some equal
    sizes at h = 1) falls back to asymptotic. Once the exact path ran, the statistic is h / lcm,
    as scipy returns it.
    """
    g = math.gcd(n1, n2)
    n1g = n1 // g
    n2g = n2 // g
    mode = method
    warn = WARN_NONE
    if mode == METHOD_AUTO:
        mode = METHOD_EXACT if max(n1, n2) <= MAX_AUTO_N else METHOD_ASYMP
    elif mode == METHOD_EXACT and n1g >= _INT32_MAX / n2g:
        mode = METHOD_ASYMP
        warn = WARN_LCM
    if mode == METHOD_EXACT:
        lcm = n1g * n2
        de = h * 1.0 / lcm
        if h == 0:
            return de, 1.0, USED_EXACT, warn
        p = prob_outside_square(n1, h) if n1 == n2 else outer_prob_inside(n1, n2, g, h)
        if 0.0 <= p <= 1.0:
            return de, p, USED_EXACT, warn
        warn = WARN_EXACT_FAILED  # e.g. 1 + 1 ulp; scipy then goes on with d = h / lcm, and so do we
        d = de
    big = float(max(n1, n2))
    small = float(min(n1, n2))
    en = big * small / (big + small)
    return d, _clip(kstwo_sf(d, np.rint(en))), USED_ASYMP, warn


@nb.njit(**_OPTS)
def ks_2samp_sorted(a: np.ndarray, b: np.ndarray, method: int) -> tuple[float, float, int, int]:
    """Two-sample KS of sorted, NaN-free, non-empty samples: ``ks_pvalue`` of their ``ks_walk``."""
    h, d = ks_walk(a, b)
    return ks_pvalue(a.shape[0], b.shape[0], h, d, method)
