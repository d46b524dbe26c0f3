"""KS p-values: the null distributions of the two-sample statistic and ``ks_pvalue``, which picks one.

The exact two-sided distribution ports scipy 1.17's ``_compute_prob_outside_square``
(equal sizes) and ``_compute_outer_prob_inside_method`` (Hodges' inside method with Viehmann's
recursion for 1 - p); the asymptotic path is ``kstwo.sf(d, round(m n / (m + n)))``, scipy's
``_kolmogn`` (Simard & L'Ecuyer's choice among Ruben-Gambino, Durbin/Marsaglia-Tsang-Wang matrix
power, Pomeranz, Pelz-Good and 2 x one-sided Smirnov). Branch thresholds and operation order are
kept so results match scipy to ~1e-12. Two deliberate differences, both documented where they
live: the Durbin matrix power is rescaled by exact powers of two (scipy relies on ``longdouble``
for range), and the one-sided Smirnov sum runs in log space in double precision (scipy's C code
uses double-double), which keeps ~1e-10 relative accuracy where it is used (p < 0.03).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from kernels.numba.drift._jit import OPTS

#: scipy's auto rule: exact when max(n1, n2) <= MAX_AUTO_N (scipy.stats._stats_py.ks_2samp).
MAX_AUTO_N = 10000
_INT32_MAX = 2147483647.0

#: ``method`` codes, the values of ``kernels.drift.KS_METHODS``.
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
# Exact two-sided distribution (scipy.stats._stats_py / _stats_pythran)
# ------------------------------------------------------------------------------------------------


@nb.njit(**OPTS)
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


@nb.njit(**OPTS)
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


@nb.njit(inline="always", **OPTS)
def _clip(p: float) -> float:
    return min(max(p, 0.0), 1.0)


@nb.njit(**OPTS)
def _log_nfactorial_div_n_pow_n(n: int) -> float:
    rn = 1.0 / n
    x = rn / n
    y = 0.0
    for c in _STIRLING:
        y = y * x + c
    return math.log(n) / 2 - n + _LOG_2PI / 2 + rn * y


@nb.njit(**OPTS)
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


@nb.njit(**OPTS)
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


@nb.njit(**OPTS)
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


@nb.njit(**OPTS)
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


@nb.njit(inline="always", **OPTS)
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


@nb.njit(**OPTS)
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


@nb.njit(**OPTS)
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


@nb.njit(**OPTS)
def kstwo_sf(d: float, n: float) -> float:
    """``scipy.stats.kstwo.sf(d, n)``: NaN unless n is an integer >= 1; 1 at or below the support."""
    if not (n >= 1.0) or n != math.floor(n) or d != d:
        return np.nan
    if d <= 0.5 / n:
        return 1.0
    if d >= 1.0:
        return 0.0
    return kolmogn_sf(int(n), d)


@nb.njit(**OPTS)
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
