"""Drift benchmark: PSI + two-sample KS over every feature, our kernels vs scipy per column.

Why: the drift monitor compares each window of live requests with the training reference, for
every feature, and must stay a small fraction of the scoring budget. This measures the full
per-window work on 1M rows x 50 features (``--quick``: 200k rows), with everything derived from
the reference computed beforehand, as at training time:

* **ours**: ``psi_matrix`` (one parallel binning pass) + ``ks_matrix`` with a ``KSReference``
  (bucketed exact KS statistic, no sort of the window; see kernels/numba/drift/ks_statistic.py), on numba's
  default thread count and, because this machine is shared, also on one thread.
* **scipy per column**: ``scipy.stats.ks_2samp(method="asymp")`` on each column (NaN dropped
  first, as ours does) plus PSI from ``np.histogram`` over the same precomputed edges and
  reference counts: what a monitor written with the usual libraries does. Same work on both
  sides: scipy gets the reference as ours does, sorted and NaN-free at training time (ks_2samp
  still sorts its inputs; on sorted input that is cheap); and a second comparison charges both
  sides for sorting the reference in every window (``ours ... + reference sort`` against scipy on
  the unsorted reference).
* **Evidently** ``DataDriftPreset``, when ``import evidently`` works (it is not a dependency and
  is not installed by this script; the output says so when it is missing).

The current window is the reference resampled with replacement, with a few features drifted
(mean shifts of 0.2, 0.05 and 0.01 sd, a 20 % scale change, 2 % missing values), so both the
"no drift" and the "drift" paths of every statistic are exercised. Ours and scipy run in
interleaved rounds (a load spike from another process on this shared machine hits both alike);
reported: median seconds +- half the inter-quartile range, and the speed-up against scipy in
the same run. Results must agree (PSI and KS statistic to 1e-9, KS p-value to 1e-9 absolute):
max |difference| is printed and stored, and a disagreement fails the run (exit 1, also without
``--check``). Every sample goes to ``bench/results/drift.json``; ``bench/results/drift.png``
is a bar chart.

Usage::

    python -m bench.drift            # 1M rows x 50 features (~2 minutes, scipy dominates)
    python -m bench.drift --quick    # 200k rows (CI)
    python -m bench.drift --check    # exit 1 if a target is missed
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np

from bench.report import RESULTS, machine, machine_line, markdown_table, spread, write_json
from kernels import drift

#: Targets for ours (PSI + KS, all features): speed-up vs scipy per column, and wall time.
TARGETS = {"speedup_vs_scipy": 20.0, "max_seconds": 2.0}
#: Agreement with scipy, max |ours - scipy| over features: PSI, KS statistic, KS p-value.
TOLERANCE = {"psi": 1e-9, "ks_statistic": 1e-9, "ks_pvalue": 1e-9}
#: Drifted features: (index, kind, amount).
DRIFTS = [(0, "shift", 0.2), (1, "shift", 0.05), (2, "scale", 1.2), (3, "shift", 0.01), (4, "missing", 0.02)]


def make_data(n_rows: int, n_features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Reference (standard normal) and current window (a resample with DRIFTS applied)."""
    rng = np.random.default_rng(seed)
    reference = rng.standard_normal((n_rows, n_features))
    current = reference[rng.integers(0, n_rows, n_rows)]
    for j, kind, amount in DRIFTS:
        if kind == "shift":
            current[:, j] += amount
        elif kind == "scale":
            current[:, j] *= amount
        else:
            current[rng.random(n_rows) < amount, j] = np.nan
    return reference, current


def ours(profile: dict[str, Any], current: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    psi = drift.psi_matrix(profile["edges"], profile["counts"], current)
    ks_stat, ks_p = drift.ks_matrix(profile["ks"], current)
    return psi, ks_stat, ks_p


def scipy_per_column(
    profile: dict[str, Any], reference: np.ndarray | list[np.ndarray], current: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``reference``: the raw ``[rows, features]`` matrix, or per feature the sorted NaN-free column
    (what ours keeps from training time)."""
    from scipy import stats

    presorted = isinstance(reference, list)
    n_features = current.shape[1]
    psi = np.empty(n_features)
    ks_stat = np.empty(n_features)
    ks_p = np.empty(n_features)
    for j in range(n_features):
        c = current[:, j]
        if presorted:
            r = reference[j]
        else:
            r = reference[:, j]
            r = r[~np.isnan(r)]
        c = c[~np.isnan(c)]
        res = stats.ks_2samp(r, c, method="asymp")
        ks_stat[j], ks_p[j] = res.statistic, res.pvalue
        edges = profile["edges"][j]
        ref_counts = profile["counts"][j].astype(np.float64)
        cur_counts = np.append(np.histogram(current[:, j], bins=edges)[0], np.isnan(current[:, j]).sum())
        rp = np.where(ref_counts == 0, 1e-4, ref_counts / ref_counts.sum())
        cp = np.where(cur_counts == 0, 1e-4, cur_counts / cur_counts.sum())
        psi[j] = np.sum((cp - rp) * np.log(cp / rp))
    return psi, ks_stat, ks_p


def evidently_runner(reference: np.ndarray, current: np.ndarray) -> tuple[Callable[[], Any] | None, str]:
    """A callable running Evidently's data-drift preset, or None and the reason."""
    if importlib.util.find_spec("evidently") is None:
        return None, "evidently is not installed (not a dependency; not installed by this benchmark)"
    try:
        import pandas as pd
        from evidently import Report
        from evidently.presets import DataDriftPreset

        ref_df = pd.DataFrame(reference, columns=[f"f{j}" for j in range(reference.shape[1])])
        cur_df = pd.DataFrame(current, columns=ref_df.columns)
        return (lambda: Report([DataDriftPreset()]).run(cur_df, ref_df)), "evidently DataDriftPreset"
    except Exception as exc:  # an API we do not know: report it rather than guess
        return None, f"evidently is installed but its API did not match ({type(exc).__name__}: {exc})"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def environment() -> dict[str, Any]:
    import scipy

    return {
        **machine(),
        "numba_threads": numba.get_num_threads(),
        "scipy": scipy.__version__,
        "numba": numba.__version__,
    }


def plot(rows: list[dict[str, Any]], path: Path, shape: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed_rows = [r for r in rows if r["samples_s"]]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    names = [r["what"] for r in timed_rows]
    med = [r["median_s"] for r in timed_rows]
    err = [r["half_iqr_s"] for r in timed_rows]
    colors = ["tab:blue" if r["what"].startswith("ours") else "tab:gray" for r in timed_rows]
    bars = ax.barh(names, med, xerr=err, color=colors, capsize=3)
    for bar, r in zip(bars, timed_rows, strict=True):
        label = f"{r['median_s']:.3g} s" + (f"  ({r['speedup_vs_scipy']:.0f}x)" if r["what"].startswith("ours") else "")
        ax.text(bar.get_width() * 1.15, bar.get_y() + bar.get_height() / 2, label, va="center", fontsize=9)
    ax.set_xscale("log")
    ax.set_xlim(right=max(med) * 8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds per window, all features (median, log scale)")
    ax.set_title(f"PSI + KS over all features, {shape} (rows x features)")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200k rows and fewer repeats (CI)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--rows", type=int, default=None, help="override the number of rows")
    parser.add_argument("--features", type=int, default=50)
    args = parser.parse_args(argv)
    n_rows = args.rows or (200_000 if args.quick else 1_000_000)
    rounds = 5 if args.quick else 3  # scipy repeats; ours runs OURS_PER_ROUND times per round
    ours_per_round = 3
    shape = f"{n_rows:,} x {args.features}"
    env = environment()

    print(f"generating {shape} reference and current window ...", file=sys.stderr)
    reference, current = make_data(n_rows, args.features)

    # Training time: everything derived from the reference.
    fit_s, (edges, counts) = timed(lambda: drift.psi_fit(reference))
    ks_fit_s, ks_ref = timed(lambda: drift.KSReference.fit(reference))
    index_s, _ = timed(ks_ref.index)
    profile = {"edges": edges, "counts": counts, "ks": ks_ref}

    # scipy's reference as ours keeps it: sorted, NaN dropped (prepared once, like KSReference.fit)
    ref_sorted = [col[~np.isnan(col)] for col in ks_ref.columns]

    def ours_with_sort() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ks = drift.KSReference.fit(reference)
        ks.index()
        return ours({**profile, "ks": ks}, current)

    ours(profile, current)  # compile / load the numba cache outside the timings
    samples: dict[str, list[float]] = {"ours": [], "ours_psi": [], "ours_ks": [], "ours_1thread": [], "scipy": [],
                                       "ours_with_sort": [], "scipy_unsorted": []}  # fmt: skip
    out_ours = out_scipy = out_scipy_unsorted = None
    threads = numba.get_num_threads()
    for r in range(rounds):
        print(f"round {r + 1}/{rounds} ...", file=sys.stderr)
        for _ in range(ours_per_round):
            t, out_ours = timed(lambda: ours(profile, current))
            samples["ours"].append(t)
            samples["ours_psi"].append(timed(lambda: drift.psi_matrix(edges, counts, current))[0])
            samples["ours_ks"].append(timed(lambda: drift.ks_matrix(ks_ref, current))[0])
            numba.set_num_threads(1)  # this machine is shared: show what one core does alone
            samples["ours_1thread"].append(timed(lambda: ours(profile, current))[0])
            numba.set_num_threads(threads)
        samples["ours_with_sort"].append(timed(ours_with_sort)[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            t, out_scipy = timed(lambda: scipy_per_column(profile, ref_sorted, current))
            samples["scipy"].append(t)
            t, out_scipy_unsorted = timed(lambda: scipy_per_column(profile, reference, current))
            samples["scipy_unsorted"].append(t)

    ev_fn, ev_note = evidently_runner(reference, current)
    if ev_fn is not None:
        ev_fn()
        samples["evidently"] = [timed(ev_fn)[0] for _ in range(rounds)]

    names = ("psi", "ks_statistic", "ks_pvalue")
    diffs = {
        name: max(float(np.max(np.abs(a - b))), float(np.max(np.abs(a - c))))
        for name, a, b, c in zip(names, out_ours, out_scipy, out_scipy_unsorted, strict=True)
    }
    disagree = [
        f"{k}: max |ours - scipy| {v:.3g} > {TOLERANCE[k]:g}" for k, v in diffs.items() if not v <= TOLERANCE[k]
    ]  # NaN disagrees too
    med_scipy = spread(samples["scipy"])[0]
    med_scipy_unsorted = spread(samples["scipy_unsorted"])[0]
    labels = {
        "ours": "ours: PSI + KS",
        "ours_psi": "ours: PSI only",
        "ours_ks": "ours: KS only",
        "ours_1thread": "ours: PSI + KS, 1 thread",
        "scipy": "scipy per column: KS asymp + np.histogram PSI (reference pre-sorted, as ours)",
        "ours_with_sort": "ours: PSI + KS + reference sort and index (both sides sort)",
        "scipy_unsorted": "scipy per column, unsorted reference (both sides sort)",
        "evidently": "evidently DataDriftPreset",
    }
    rows = []
    for key, values in samples.items():
        med, half = spread(values)
        # "both sides sort" rows compare with each other; the rest with scipy on the pre-sorted reference
        base = med_scipy_unsorted if key in ("ours_with_sort", "scipy_unsorted") else med_scipy
        rows.append({
            "what": labels[key], "key": key, "shape": shape, "median_s": med, "half_iqr_s": half,
            "speedup_vs_scipy": base / med, "samples_s": values,
        })  # fmt: skip
    if ev_fn is None:
        rows.append({"what": "evidently", "key": "evidently", "shape": shape, "median_s": None,
                     "half_iqr_s": None, "speedup_vs_scipy": None, "samples_s": [], "note": ev_note})  # fmt: skip

    table = markdown_table(
        ["what", "rows x features", "seconds (median ± IQR/2)", "x scipy"],
        [
            [r["what"], r["shape"], f"{r['median_s']:.3f} ± {r['half_iqr_s']:.3f}", f"{r['speedup_vs_scipy']:.1f}"]
            if r["samples_s"]
            else [r["what"], r["shape"], "n/a", r["note"]]
            for r in rows
        ],
    )
    ours_row = rows[0]
    missed = list(disagree)
    if ours_row["speedup_vs_scipy"] < TARGETS["speedup_vs_scipy"]:
        missed.append(f"speed-up {ours_row['speedup_vs_scipy']:.1f}x < {TARGETS['speedup_vs_scipy']:.0f}x")
    if ours_row["median_s"] > TARGETS["max_seconds"]:
        missed.append(f"{ours_row['median_s']:.2f} s > {TARGETS['max_seconds']} s")
    env["loadavg_end"] = os.getloadavg()

    print(table)
    print()
    print(
        f"training-time profile: psi_fit {fit_s:.2f} s, KSReference.fit (sort) {ks_fit_s:.2f} s, index {index_s:.2f} s"
    )
    print("max |ours - scipy|: " + ", ".join(f"{k} {v:.2g}" for k, v in diffs.items()))
    print(f"drifted features {[d[0] for d in DRIFTS]}: psi {np.round(out_ours[0][:6], 4).tolist()}, "
          f"KS p {np.array2string(out_ours[2][:6], precision=3)}")  # fmt: skip
    if ev_fn is None:  # an optional peer (not a dependency): reported, never silent, not a failure
        print(f"MISS  peer evidently (optional, not a failure): {ev_note}")
    print(f"{machine_line(env)}; numba threads {env['numba_threads']}, "
          f"load average {env['loadavg_start']} -> {env['loadavg_end']}")  # fmt: skip
    print("targets: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))

    payload = {
        "benchmark": "drift",
        "mode": "quick" if args.quick else "full",
        "shape": {"rows": n_rows, "features": args.features},
        "drifts": [{"feature": j, "kind": k, "amount": a} for j, k, a in DRIFTS],
        "environment": env,
        "training_seconds": {"psi_fit": fit_s, "ks_reference_sort": ks_fit_s, "ks_index": index_s},
        "targets": TARGETS,
        "missed": missed,
        "max_abs_diff_vs_scipy": diffs,
        "tolerance": TOLERANCE,
        "agreement_failures": disagree,
        "results": rows,
    }
    path = write_json("drift", payload)
    plot(rows, RESULTS / "drift.png", shape)
    print(f"wrote {path} and {RESULTS / 'drift.png'}")
    if disagree:  # a fast wrong answer fails the run, --check or not
        print("ours and scipy disagree: " + "; ".join(disagree), file=sys.stderr)
        return 1
    if args.check and missed:
        print("target check failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
