"""The reference profile a model is compared against for drift, fixed at training time.

Why stored with the compiled model (``compiled/reference.npz``): the serving path
must compare live traffic with exactly the data the served version was trained on,
so the profile travels with the version and loads with it, without pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kernels.drift import psi_bin_counts, psi_bin_edges, psi_fit, sort_columns

DEFAULT_BINS = 10
DEFAULT_SAMPLE_ROWS = 5000


@dataclass(slots=True)
class ReferenceProfile:
    """PSI bins (edges fixed from the full training data) and a sorted sample for KS."""

    feature_names: list[str]
    edges: list[np.ndarray]  # per feature: [-inf, quantiles..., +inf]
    counts: list[np.ndarray]  # per feature: len(edges) counts (value bins, then NaN)
    sorted_columns: np.ndarray  # [features, sample rows], each row sorted (KS reference)
    score_edges: np.ndarray
    score_counts: np.ndarray
    score_sorted: np.ndarray  # [1, sample rows]

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        feature_names: list[str],
        scores: np.ndarray,
        n_bins: int = DEFAULT_BINS,
        sample_rows: int = DEFAULT_SAMPLE_ROWS,
        seed: int = 0,
    ) -> ReferenceProfile:
        if X.ndim != 2 or X.shape[1] != len(feature_names) or X.shape[0] == 0:
            raise ValueError(f"reference matrix shape {X.shape} does not match {len(feature_names)} features")
        edges, counts = psi_fit(X, n_bins)
        rng = np.random.default_rng(seed)
        take = rng.choice(X.shape[0], size=min(sample_rows, X.shape[0]), replace=False)
        score_take = rng.choice(scores.size, size=min(sample_rows, scores.size), replace=False)
        score_edges = psi_bin_edges(scores, n_bins)
        return cls(
            feature_names=list(feature_names),
            edges=edges,
            counts=counts,
            sorted_columns=sort_columns(X[take]),
            score_edges=score_edges,
            score_counts=psi_bin_counts(scores, score_edges),
            score_sorted=sort_columns(scores[score_take, None]),
        )

    def save(self, path: str | Path) -> None:
        width = max(e.size for e in self.edges)
        edges = np.full((len(self.edges), width), np.nan)
        counts = np.zeros((len(self.edges), width), dtype=np.int64)
        for j, (e, c) in enumerate(zip(self.edges, self.counts, strict=True)):
            edges[j, : e.size] = e
            counts[j, : c.size] = c
        np.savez(
            path,
            feature_names=np.array(self.feature_names, dtype=np.str_),
            n_edges=np.array([e.size for e in self.edges], dtype=np.int64),
            edges=edges,
            counts=counts,
            sorted_columns=self.sorted_columns,
            score_edges=self.score_edges,
            score_counts=self.score_counts,
            score_sorted=self.score_sorted,
        )

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        """Load without pickle; shapes are checked so a damaged file fails here, not mid-request."""
        try:
            with np.load(path, allow_pickle=False) as data:
                names = [str(n) for n in data["feature_names"]]
                n_edges = data["n_edges"]
                edges = [data["edges"][j, :k].copy() for j, k in enumerate(n_edges)]
                counts = [data["counts"][j, :k].copy() for j, k in enumerate(n_edges)]
                profile = cls(
                    names, edges, counts, data["sorted_columns"], data["score_edges"], data["score_counts"],
                    data["score_sorted"],
                )
        except (KeyError, ValueError, OSError) as exc:
            raise ValueError(f"malformed reference profile {path}: {exc}") from exc
        if profile.sorted_columns.shape[0] != len(names) or len(edges) != len(names):
            raise ValueError(f"malformed reference profile {path}: feature counts disagree")
        return profile
