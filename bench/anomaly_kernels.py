"""Micro-benchmark: compiled tree-ensemble kernels vs scikit-learn vs ONNX Runtime.

Why: the anomaly scorer promises to answer single events in microseconds and large batches at
several times scikit-learn's speed, and never to be slower than the obvious alternative (export to
ONNX and run ONNX Runtime). This script measures exactly those claims on the ODDS Shuttle data
(shipped inside the ``river`` wheel) with the two production model types:
``IsolationForest(n_estimators=100)`` and ``RandomForestClassifier(n_estimators=100,
class_weight="balanced_subsample")``.

Method (llama-bench style): for every (model, batch) all contenders are warmed up, then timed in
interleaved rounds (one repeat of each contender per round, so a load spike from another process on
this shared machine hits all of them alike); a repeat times a loop of calls sized to last a few
milliseconds, after a short pause that lets the previous contender's spinning threads go idle.
Reported: median microseconds per call, +- half the inter-quartile range, and the speed ratio
against scikit-learn and ONNX Runtime from the same rounds. Every sample goes to
``bench/results/anomaly_kernels.json``; ``bench/results/anomaly_kernels.png`` plots time per call
against batch size.

Usage::

    python bench/anomaly_kernels.py            # full run (~1 minute)
    python bench/anomaly_kernels.py --quick    # CI: fewer and shorter repeats
    python bench/anomaly_kernels.py --check    # exit 1 if a target is missed
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

#: Targets the dispatch ("auto") must meet; ratios are speed-ups (baseline time / our time).
TARGETS = {
    "vs_sklearn_batch_1": 100.0,
    "vs_sklearn_batch_4096": 3.0,
    "vs_ort_every_batch": 1.0,
}


@dataclass
class Series:
    """Timings of one contender on one (model, batch): microseconds per call, one per repeat."""

    what: str
    model: str
    batch: int
    calls_per_repeat: int
    samples_us: list[float] = field(default_factory=list)
    max_abs_diff_vs_sklearn: float | None = None

    @property
    def median(self) -> float:
        return float(np.median(self.samples_us))

    @property
    def half_iqr(self) -> float:
        q1, q3 = np.percentile(self.samples_us, [25, 75])
        return float(q3 - q1) / 2


def load_shuttle() -> tuple[np.ndarray, np.ndarray]:
    """ODDS Shuttle (49,097 rows, 9 features, label column ``anomaly``) from the river wheel."""
    import pandas as pd

    spec = importlib.util.find_spec("river")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the `river` package is needed for the Shuttle data: pip install river")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "shuttle.csv.gz"
    frame = pd.read_csv(path)
    y = frame.pop("anomaly").to_numpy().astype(int)
    return frame.to_numpy(dtype=np.float64), y


def build_contenders(
    model: Any, kind: str, X_sample: np.ndarray
) -> tuple[dict[str, Callable[[np.ndarray], np.ndarray]], dict[str, str]]:
    """Score functions by name: sklearn, onnxruntime, auto and every available implementation."""
    import onnxruntime as ort
    from skl2onnx import to_onnx

    from kernels import tree_ensemble as te

    forest = te.compile_forest(model)
    if kind == "isolation_forest":
        onx = to_onnx(model, X_sample[:1], target_opset={"": 17, "ai.onnx.ml": 3})
        output = "scores"

        def sk(X: np.ndarray) -> np.ndarray:
            return model.decision_function(X)
    else:
        onx = to_onnx(model, X_sample[:1], options={id(model): {"zipmap": False}})
        output = "probabilities"

        def sk(X: np.ndarray) -> np.ndarray:
            return model.predict_proba(X)[:, 1]

    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def onnx(X: np.ndarray) -> np.ndarray:
        out = session.run([output], {input_name: X})[0]
        return out[:, 0] if kind == "isolation_forest" else out[:, 1]

    contenders: dict[str, Callable[[np.ndarray], np.ndarray]] = {"sklearn": sk, "onnxruntime": onnx}
    contenders["auto"] = lambda X: te.score(forest, X)
    for impl in te.available_implementations():
        contenders[impl] = lambda X, impl=impl: te.score(forest, X, impl=impl)
    info = {"auto_resolves_to": te.available_implementations()[0]}
    return contenders, info


def time_calls(fn: Callable[[np.ndarray], np.ndarray], X: np.ndarray, calls: int) -> float:
    """Microseconds per call over a loop of ``calls`` calls."""
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn(X)
    return (time.perf_counter_ns() - start) / calls / 1e3


def calibrate(fn: Callable[[np.ndarray], np.ndarray], X: np.ndarray, repeat_s: float) -> int:
    """Calls per repeat so that one repeat lasts about ``repeat_s`` (at least one call)."""
    for _ in range(3):  # warm-up: JIT compilation, caches, thread pools
        fn(X)
    per_call = min(time_calls(fn, X, 1) for _ in range(3)) / 1e6
    return max(1, int(repeat_s / max(per_call, 1e-9)))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sklearn.ensemble import IsolationForest, RandomForestClassifier

    X, y = load_shuttle()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    n_train = int(0.8 * len(X))
    X_train, y_train = X[order[:n_train]], y[order[:n_train]]
    X_test = X[order[n_train:]].astype(np.float32)

    fit_s: dict[str, float] = {}
    models: dict[str, tuple[Any, str]] = {}
    start = time.perf_counter()
    models["IsolationForest"] = (
        IsolationForest(n_estimators=100, random_state=0).fit(X_train),
        "isolation_forest",
    )
    fit_s["IsolationForest"] = time.perf_counter() - start
    start = time.perf_counter()
    models["RandomForest"] = (
        RandomForestClassifier(n_estimators=100, class_weight="balanced_subsample", random_state=0).fit(
            X_train, y_train
        ),
        "random_forest",
    )
    fit_s["RandomForest"] = time.perf_counter() - start

    series: list[Series] = []
    infos: dict[str, dict[str, str]] = {}
    contenders_by_model = {}
    for name, (model, kind) in models.items():
        contenders_by_model[name], infos[name] = build_contenders(model, kind, X_test)
    n_contenders = len(next(iter(contenders_by_model.values())))
    total = len(models) * len(args.batches) * args.repeats * n_contenders
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, transient=not sys.stderr.isatty()) as progress:
        task = progress.add_task("timing", total=total)
        for name, contenders in contenders_by_model.items():
            model, _ = models[name]
            for batch in args.batches:
                Xb = np.ascontiguousarray(X_test[rng.integers(0, len(X_test), size=batch)])
                progress.update(task, description=f"{name} batch {batch}: warm-up")
                expected = contenders["sklearn"](Xb)
                group = []
                for what, fn in contenders.items():
                    s = Series(what, name, batch, calibrate(fn, Xb, args.repeat_s))
                    s.max_abs_diff_vs_sklearn = float(np.max(np.abs(fn(Xb) - expected)))
                    group.append((s, fn))
                progress.update(task, description=f"{name} batch {batch}")
                gc.disable()
                try:
                    for _ in range(args.repeats):
                        # shuffle the order each round so no contender always runs right after
                        # another (a rotation kept the same predecessor: ORT before auto every time)
                        for k in rng.permutation(len(group)):
                            s, fn = group[k]
                            # ONNX Runtime's and OpenMP's threads spin for a while after a call;
                            # let them stop so they do not steal the next contender's second core,
                            # then wake this contender's threads as steady traffic would.
                            time.sleep(args.settle_s)
                            fn(Xb)
                            s.samples_us.append(time_calls(fn, Xb, s.calls_per_repeat))
                            progress.advance(task)
                finally:
                    gc.enable()
                series += [s for s, _ in group]

    return {
        "series": series,
        "infos": infos,
        "fit_seconds": fit_s,
    }


def ratios(series: list[Series]) -> dict[tuple[str, int, str], tuple[float, float]]:
    """(model, batch, what) -> (speed-up vs sklearn, speed-up vs ONNX Runtime), from medians."""
    base = {(s.model, s.batch, s.what): s.median for s in series}
    return {
        (s.model, s.batch, s.what): (
            base[(s.model, s.batch, "sklearn")] / s.median,
            base[(s.model, s.batch, "onnxruntime")] / s.median,
        )
        for s in series
    }


def check_targets(series: list[Series]) -> list[str]:
    """Messages for every target the dispatch misses (empty when all are met)."""
    r = ratios(series)
    missed = []
    for (model, batch, what), (vs_sk, vs_ort) in sorted(r.items()):
        if what != "auto":
            continue
        if batch == 1 and vs_sk < TARGETS["vs_sklearn_batch_1"]:
            missed.append(f"{model} batch 1: {vs_sk:.1f}x sklearn < {TARGETS['vs_sklearn_batch_1']:.0f}x")
        if batch == 4096 and vs_sk < TARGETS["vs_sklearn_batch_4096"]:
            missed.append(f"{model} batch 4096: {vs_sk:.2f}x sklearn < {TARGETS['vs_sklearn_batch_4096']:.0f}x")
        if vs_ort < TARGETS["vs_ort_every_batch"]:
            missed.append(f"{model} batch {batch}: {vs_ort:.2f}x ONNX Runtime (slower)")
    for s in series:  # a fast wrong answer is a miss too
        diff = s.max_abs_diff_vs_sklearn or 0.0
        if s.what not in ("sklearn", "onnxruntime") and diff > 1e-6:
            missed.append(f"{s.what} {s.model} batch {s.batch}: differs from sklearn by {diff:.3g}")
    return missed


def markdown(series: list[Series]) -> str:
    r = ratios(series)
    lines = [
        "| what | model | batch | µs/call | ×sklearn | ×ORT |",  # noqa: RUF001 (the multiplication sign is meant)
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for s in series:
        vs_sk, vs_ort = r[(s.model, s.batch, s.what)]
        lines.append(
            f"| {s.what} | {s.model} | {s.batch} | {s.median:,.1f} ± {s.half_iqr:,.1f} | {vs_sk:,.2f} | {vs_ort:,.2f} |"
        )
    return "\n".join(lines)


def plot(series: list[Series], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(s.model for s in series))
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        for what in dict.fromkeys(s.what for s in series if s.model == model):
            pts = sorted((s.batch, s.median, s.half_iqr) for s in series if s.model == model and s.what == what)
            b, med, err = (np.array(v) for v in zip(*pts, strict=True))
            ax.errorbar(b, med, yerr=err, marker="o", capsize=3, label=what)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size (rows)")
        ax.set_ylabel("µs per call (median)")
        ax.set_title(model)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def environment() -> dict[str, Any]:
    import onnxruntime
    import sklearn

    from bench.report import machine

    return {
        **machine(),
        "sklearn": sklearn.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats (CI)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 4096])
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and PNG")
    args = parser.parse_args(argv)
    args.repeats = 7 if args.quick else 21
    args.repeat_s = 0.004 if args.quick else 0.015
    args.settle_s = 0.01 if args.quick else 0.02

    if str(ROOT) not in sys.path:  # run as a script from anywhere, without installing the package
        sys.path.insert(0, str(ROOT))
    env = environment()
    result = run(args)
    env["loadavg_end"] = os.getloadavg()
    series: list[Series] = result["series"]

    table = markdown(series)
    missed = check_targets(series)
    print(table)
    print()
    auto = {name: info["auto_resolves_to"] for name, info in result["infos"].items()}
    print(f"auto = {auto}; {env['cpus_available']} CPUs ({env['cpu']}); load average {env['loadavg_start']}")
    worst = max((s.max_abs_diff_vs_sklearn or 0.0) for s in series if s.what not in ("sklearn", "onnxruntime"))
    print(f"max |ours - sklearn| over all batches: {worst:.3g}")
    print("targets: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))

    args.out.mkdir(parents=True, exist_ok=True)
    r = ratios(series)
    payload = {
        "benchmark": "anomaly_kernels",
        "mode": "quick" if args.quick else "full",
        "environment": env,
        "fit_seconds": result["fit_seconds"],
        "auto_resolves_to": auto,
        "targets": TARGETS,
        "missed": missed,
        "results": [
            {
                **asdict(s),
                "median_us": s.median,
                "half_iqr_us": s.half_iqr,
                "speedup_vs_sklearn": r[(s.model, s.batch, s.what)][0],
                "speedup_vs_onnxruntime": r[(s.model, s.batch, s.what)][1],
            }
            for s in series
        ],
    }
    (args.out / "anomaly_kernels.json").write_text(json.dumps(payload, indent=2))
    plot(series, args.out / "anomaly_kernels.png")
    print(f"wrote {args.out / 'anomaly_kernels.json'} and {args.out / 'anomaly_kernels.png'}")
    if args.check and missed:
        print("target check failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
