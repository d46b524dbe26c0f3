"""Batch drift report: a data file against a model's training reference.

`stackserve drift --reference shuttle-rf@champion --current events.csv` prints a
per-feature table (PSI, KS statistic and p-value, verdict) and writes an HTML page
with reference-vs-current distribution plots, one per feature. The thresholds are
the serving monitor's (``drift`` section of the config), so a batch verdict and a
live alert mean the same thing.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kernels.drift import KSReference, ks_matrix, psi_bin_counts, psi_matrix
from server.anomaly.reference import ReferenceProfile
from server.config import DriftConfig


@dataclass(slots=True)
class FeatureDrift:
    feature: str
    psi: float
    ks_statistic: float
    ks_pvalue: float
    verdict: str  # ok | warn | alert


def compare(reference: ReferenceProfile, current: pd.DataFrame, cfg: DriftConfig) -> list[FeatureDrift]:
    """Per-feature drift of ``current`` (columns named as the reference's features)."""
    names = [n for n in reference.feature_names if n in current.columns]
    if not names:
        raise ValueError(
            f"the current data has none of the reference's features {reference.feature_names[:10]}"
        )
    idx = [reference.feature_names.index(n) for n in names]
    X = current[names].to_numpy(dtype=np.float64)
    if X.shape[0] == 0:
        raise ValueError("the current data has no rows")
    psi = psi_matrix([reference.edges[j] for j in idx], [reference.counts[j] for j in idx], X)
    stat, pvalue = ks_matrix(KSReference(reference.sorted_columns[idx]), X)
    bonferroni = cfg.ks_alpha / len(names)
    out = []
    for k, name in enumerate(names):
        alert = psi[k] >= cfg.psi_alert or (not np.isnan(pvalue[k]) and pvalue[k] < bonferroni)
        verdict = "alert" if alert else "warn" if psi[k] >= cfg.psi_warn else "ok"
        out.append(FeatureDrift(name, float(psi[k]), float(stat[k]), float(pvalue[k]), verdict))
    return out


def _plot_png(reference: ReferenceProfile, current: pd.DataFrame, rows: list[FeatureDrift]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(rows)
    cols = min(3, n)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(4.2 * cols, 3.0 * ((n + cols - 1) // cols)),
                             squeeze=False)
    for ax, row in zip(axes.ravel(), rows, strict=False):
        j = reference.feature_names.index(row.feature)
        edges = reference.edges[j]
        ref = reference.counts[j][:-1] / max(reference.counts[j].sum(), 1)
        cur_counts = psi_bin_counts(current[row.feature].to_numpy(np.float64), edges)
        cur = cur_counts[:-1] / max(cur_counts.sum(), 1)
        x = np.arange(ref.size)
        ax.bar(x - 0.2, ref, width=0.4, label="reference")
        ax.bar(x + 0.2, cur, width=0.4, label="current")
        ax.set_title(f"{row.feature}: PSI {row.psi:.3f} ({row.verdict})", fontsize=9)
        ax.set_xlabel("reference quantile bin", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def html_report(title: str, reference: ReferenceProfile, current: pd.DataFrame, rows: list[FeatureDrift]) -> str:
    png = base64.b64encode(_plot_png(reference, current, rows)).decode()
    body = "".join(
        f"<tr class='{r.verdict}'><td>{html.escape(r.feature)}</td><td>{r.psi:.4f}</td>"
        f"<td>{r.ks_statistic:.4f}</td><td>{r.ks_pvalue:.3g}</td><td>{r.verdict}</td></tr>"
        for r in rows
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:4px 10px;text-align:right}}
tr.alert{{background:#fdd}} tr.warn{{background:#ffd}}</style></head><body>
<h1>{html.escape(title)}</h1><p>{len(current)} current rows; PSI over the reference's quantile bins
(empty bins count as 1e-4), two-sample KS against the training sample.</p>
<table><tr><th>feature</th><th>PSI</th><th>KS statistic</th><th>KS p-value</th><th>verdict</th></tr>{body}</table>
<h2>Distributions</h2><img alt="reference vs current per feature" src="data:image/png;base64,{png}">
</body></html>"""
