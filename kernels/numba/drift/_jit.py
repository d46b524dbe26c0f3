"""numba options shared by the drift kernels (psi, ks_statistic, ks_pvalues).

``fastmath`` stays off: NaN is detected with ``x != x`` and the p-values must match scipy's
rounding, not approximately.
"""

OPTS = {"nogil": True, "cache": True, "fastmath": False, "boundscheck": False}
