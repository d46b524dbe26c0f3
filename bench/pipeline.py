"""Pipeline throughput: Shuttle replays through bronze -> silver -> gold, and gold's rolling
features against the same transform written in pandas.

Why: the issue's target is bronze -> gold at 1M events/minute on 2 cores, with the gold transform
no slower than the usual libraries. This measures, in one process on a fresh pipeline dir:

* **ingest**: the drops (one CSV per replay of the 49,097 Shuttle rows, ids and times shifted per
  copy) landed in bronze;
* **run**: bronze's change feed -> typing, dedup, the Great Expectations gate -> silver (merge) ->
  gold (the stream kernel over every entity) -> checkpoints, timed per stage;
* **gold transform** alone on the silver rows: ours (``server.pipeline.gold.compute``, the numba
  stream kernel) vs pandas (``groupby`` + ``rolling``/``ewm`` with the same point-in-time
  semantics), checked equal (max |difference| printed; Shuttle has no NaN, the case where the
  pandas formulation would need more work).

Great Expectations' import (seconds, once per process) is measured separately and left out of
the run's time, as a long-lived runner pays it once. Medians +- half the IQR over ``--repeats``.
DuckDB (the issue's third peer) is not installed here; it is left out and the table says so.

Usage::

    python -m bench.pipeline            # 4 replays (196k events), 3 repeats
    python -m bench.pipeline --quick    # 1 replay, 2 repeats (CI)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import machine_line, markdown_table, spread, write_json
from server.pipeline import tables
from server.pipeline.bronze import ingest_file
from server.pipeline.drops import read_drop
from server.pipeline.feature_views import resolve
from server.pipeline.gold import compute, feature_names
from server.pipeline.infer_spec import infer_spec
from server.pipeline.metrics import PipelineMetrics
from server.pipeline.replay import shuttle_events, write_events
from server.pipeline.runner import run
from server.pipeline.spec import PipelineSpec
from server.pipeline.tables import Layout

KEY = bytes(32)


def replays(copies: int, out: Path) -> list[Path]:
    base = shuttle_events(entities=256)
    step = pd.to_timedelta(len(base), unit="s")
    paths = []
    for k in range(copies):
        df = base.copy()
        df["event_id"] = f"r{k}-" + df["event_id"]
        df["ts"] = (pd.to_datetime(df["ts"]) + k * step).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        paths.append(write_events(df, out / f"replay{k}.csv"))
    return paths


def pandas_gold(silver: pd.DataFrame, spec: PipelineSpec, columns: list[str], window: int, alpha: float) -> np.ndarray:
    """The same features with pandas: history = the entity's previous ``window`` events (shifted
    rolling), EWMA including the event; the first event of an entity: mean = x, std = z = 0."""
    df = silver.sort_values(["_ts_us", "_event_id"], kind="stable")
    g = df.groupby(spec.entity, sort=False)[columns]
    prev = g.shift(1)
    pg = prev.groupby(df[spec.entity], sort=False)
    mean = pg.rolling(window, min_periods=1).mean().reset_index(level=0, drop=True).reindex(df.index)
    std = pg.rolling(window, min_periods=1).std(ddof=0).reset_index(level=0, drop=True).reindex(df.index)
    x = df[columns].astype("float64")
    first = prev.isna()
    mean = mean.where(~first, x)
    std = std.where(~first, 0.0)
    z = ((x - mean) / std).where(std > 1e-12, 0.0)
    ewma = g.transform(lambda s: s.astype("float64").ewm(alpha=alpha, adjust=False).mean())
    return np.hstack([mean.to_numpy(), std.to_numpy(), z.to_numpy(), ewma.to_numpy()])


def one_round(copies_paths: list[Path], spec: PipelineSpec) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        layout = Layout(Path(tmp) / "pipeline")
        metrics = PipelineMetrics()
        t0 = time.perf_counter()
        for p in copies_paths:
            ingest_file(layout, p, metrics)
        t_ingest = time.perf_counter() - t0
        marks: list[tuple[str, float]] = []
        t0 = time.perf_counter()
        report = run(layout, spec, KEY, progress=lambda m: marks.append((m, time.perf_counter())))
        t_end = time.perf_counter()
        t_run = t_end - t0
        gold_start = next(t for m, t in marks if m.startswith("gold:"))
        silver = tables.read(layout.silver).to_pandas()
        view = resolve(layout, spec.feature_views[0])
        t0 = time.perf_counter()
        ours = compute(silver, spec, view)
        t_ours = time.perf_counter() - t0
        d = view.definition
        t0 = time.perf_counter()
        theirs = pandas_gold(silver, spec, d["columns"], d["window"], d["alpha"])
        t_pandas = time.perf_counter() - t0
        diff = float(np.nanmax(np.abs(ours[feature_names(d["columns"])].to_numpy() - theirs)))
        return {"events": report.rows_in, "silver_rows": report.silver_rows, "ingest_s": t_ingest, "run_s": t_run,
                "silver_s": gold_start - marks[0][1], "gold_s": t_end - gold_start,
                "gold_ours_s": t_ours, "gold_pandas_s": t_pandas, "max_abs_diff": diff}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=4, help="Shuttle replays (49,097 events each)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 replay, 2 repeats")
    args = ap.parse_args(argv)
    if args.quick:
        args.copies, args.repeats = 1, 2
    t0 = time.perf_counter()
    from server.pipeline.expectations import _context

    _context()  # Great Expectations' import and context, once per process
    t_ge = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        paths = replays(args.copies, Path(tmp))
        spec = infer_spec(read_drop(paths[0]), "device", "ts", label="anomaly")
        spec.freshness.max_lateness_s = 1e9
        rounds = [one_round(paths, spec) for _ in range(args.repeats)]
    events = rounds[0]["events"]
    rows = []
    for what, key in (("ingest (drops -> bronze)", "ingest_s"), ("run (bronze -> gold)", "run_s"),
                      ("  silver stage (CDF, typing, GE gate, merge)", "silver_s"), ("  gold stage", "gold_s"),
                      ("gold transform: ours (stream kernel)", "gold_ours_s"),
                      ("gold transform: pandas groupby/rolling", "gold_pandas_s")):
        med, half = spread([r[key] for r in rounds])
        rows.append([what, f"{events:,}", f"{med:.2f} ± {half:.2f}", f"{events / med * 60 / 1e6:.2f}"])
    rows.append(["gold transform: DuckDB window functions", "-", "not installed here", "-"])
    ratio = spread([r["gold_pandas_s"] / r["gold_ours_s"] for r in rounds])[0]
    print(machine_line())
    print(markdown_table(["what", "events", "seconds", "M events/min"], rows))
    print(f"\nGreat Expectations import + context: {t_ge:.2f} s (once per process, not in the rows above)")
    worst = max(r["max_abs_diff"] for r in rounds)
    print(f"gold transform: ours {ratio:.1f}x pandas; max |ours - pandas| = {worst:.2e}")
    path = write_json("pipeline", {"copies": args.copies, "ge_import_s": t_ge, "rounds": rounds,
                                   "ours_vs_pandas": ratio})
    print(f"samples: {path}")
    return 0 if worst < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
