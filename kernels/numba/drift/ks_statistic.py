"""The two-sample KS statistic: merge walks of sorted samples, and many columns without sorting them.

**Many columns without sorting them.** Sorting a 1M-row column costs ~50 ms
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

Each feature's p-value is computed inside the per-feature pass (:mod:`kernels.numba.drift.ks_pvalues`).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

# ks_pvalue is compiled into _ks_per_feature and ks_2samp_sorted, but numba's disk cache checks
# this file's contents only: after editing ks_pvalues.py, delete kernels/numba/drift/__pycache__.
from kernels.numba.drift._jit import OPTS
from kernels.numba.drift.ks_pvalues import ks_pvalue

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


# ------------------------------------------------------------------------------------------------
# Merge walks
# ------------------------------------------------------------------------------------------------


@nb.njit(inline="always", **OPTS)
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


@nb.njit(**OPTS)
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


@nb.njit(inline="always", **OPTS)
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


@nb.njit(parallel=True, **OPTS)
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


@nb.njit(parallel=True, **OPTS)
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


@nb.njit(parallel=True, **OPTS)
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


@nb.njit(**OPTS)
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


@nb.njit(**OPTS)
def ks_2samp_sorted(a: np.ndarray, b: np.ndarray, method: int) -> tuple[float, float, int, int]:
    """Two-sample KS of sorted, NaN-free, non-empty samples: ``ks_pvalue`` of their ``ks_walk``."""
    h, d = ks_walk(a, b)
    return ks_pvalue(a.shape[0], b.shape[0], h, d, method)
