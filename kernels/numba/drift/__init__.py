"""Numba kernels for kernels.drift: PSI binning, the two-sample KS statistic and its p-values.

Read ``kernels/drift.py`` first for the semantics; this package holds the compiled parts only, one
module per concern, and re-exports their public names (``from kernels.numba import drift``):

* :mod:`~kernels.numba.drift.psi`: PSI bin counts of every feature in one parallel pass;
* :mod:`~kernels.numba.drift.ks_statistic`: the exact KS statistic of many columns without
  sorting them (a bucket index of the sorted reference, two passes over the window), the merge
  walk of two sorted samples and the two-sample test built on it (``ks_2samp_sorted``);
* :mod:`~kernels.numba.drift.ks_pvalues`: the null distributions (scipy's exact two-sided ones
  and ``kstwo``) and ``ks_pvalue``, which picks one as scipy's ``ks_2samp`` does.

Imports point one way: ks_statistic calls ks_pvalues (each feature's p-value is computed inside
the parallel per-feature pass); psi and ks_pvalues import neither. Mind numba's disk cache
(``cache=True``): a cached function is keyed on the contents of its own file only, not on the
functions it calls from other files. After editing ks_pvalues.py, delete
``kernels/numba/drift/__pycache__``, or the cached ``_ks_per_feature`` and ``ks_2samp_sorted``
of ks_statistic.py keep running the old p-value code (checked with numba 0.68).
"""

from kernels.numba.drift.ks_pvalues import (
    MAX_AUTO_N,
    METHOD_ASYMP,
    METHOD_AUTO,
    METHOD_EXACT,
    USED_ASYMP,
    USED_EXACT,
    WARN_EXACT_FAILED,
    WARN_LCM,
    WARN_NONE,
    kolmogn_sf,
    ks_pvalue,
    kstwo_sf,
    outer_prob_inside,
    prob_outside_square,
    smirnov_sf,
)
from kernels.numba.drift.ks_statistic import (
    MAX_BUCKET,
    NAN_BUCKET,
    SLOTS,
    TARGET,
    WIDTH,
    ks_2samp_sorted,
    ks_columns,
    ks_index,
    ks_walk,
)
from kernels.numba.drift.psi import psi_bin_counts

__all__ = [
    "MAX_AUTO_N",
    "MAX_BUCKET",
    "METHOD_ASYMP",
    "METHOD_AUTO",
    "METHOD_EXACT",
    "NAN_BUCKET",
    "SLOTS",
    "TARGET",
    "USED_ASYMP",
    "USED_EXACT",
    "WARN_EXACT_FAILED",
    "WARN_LCM",
    "WARN_NONE",
    "WIDTH",
    "kolmogn_sf",
    "ks_2samp_sorted",
    "ks_columns",
    "ks_index",
    "ks_pvalue",
    "ks_walk",
    "kstwo_sf",
    "outer_prob_inside",
    "prob_outside_square",
    "psi_bin_counts",
    "smirnov_sf",
]
