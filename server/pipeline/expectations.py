"""The Great Expectations suite generated from the spec, run as silver's gate.

Why GE and not hand-written checks: the suite is the artifact data teams already read and share
(its JSON result is what ``status`` reports), and the expectation names are the vocabulary the
quarantine table counts by. The suite checks, per row: types (the raw text matches the column's
type pattern), nulls, numeric ranges (an unbounded float column still rejects +-inf), allowed
values, unique event ids, and freshness (event time no earlier than the watermark minus the
allowed lateness, no later than ingestion time plus the allowed clock skew).

One ephemeral context per process (made on first use: GE's import costs seconds), one pandas
data source; every validation adds a suite under a fresh name.
"""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from server.pipeline.infer_spec import TYPE_PATTERNS
from server.pipeline.spec import PipelineSpec

EVENT_ID = "_event_id"
TS_US = "_ts_us"
ROW = "_row"
FLOAT_LIMIT = 1.7976931348623157e308

_lock = threading.Lock()
_ctx: Any = None
_names = itertools.count()


@dataclass(slots=True)
class GateResult:
    """Which rows failed which expectations, and GE's summary of the run (for status)."""

    failed: dict[int, list[str]]
    summary: dict[str, Any] = field(default_factory=dict)


def raw_column(name: str) -> str:
    """The frame column holding ``name``'s raw text (the type check reads it)."""
    return f"{name}__raw"


def _context() -> Any:
    global _ctx
    with _lock:
        if _ctx is None:
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            ctx = gx.get_context(mode="ephemeral")
            ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
            asset = ctx.data_sources.add_pandas("pipeline").add_dataframe_asset("silver_candidates")
            _ctx = (ctx, asset.add_batch_definition_whole_dataframe("batch"))
        return _ctx


def build_suite(spec: PipelineSpec, min_ts_us: int | None, max_ts_us: int | None) -> list[Any]:
    """The spec's expectations, each with ``meta["name"]`` = ``<expectation>:<column>``."""
    import great_expectations as gx

    E = gx.expectations
    out: list[Any] = []

    def add(expectation: Any, column: str) -> None:
        expectation.meta = {"name": f"{expectation.expectation_type}:{column}"}
        out.append(expectation)

    for col in spec.columns:
        if col.type != "string":
            add(E.ExpectColumnValuesToMatchRegex(column=raw_column(col.name), regex=TYPE_PATTERNS[col.type]),
                col.name)
        if not col.nullable:  # on the raw text: a value of the wrong type fails the type check only
            add(E.ExpectColumnValuesToNotBeNull(column=col.name if col.type == "string" else raw_column(col.name)),
                col.name)
        if col.type in ("int", "float"):
            lo = col.min if col.min is not None else -FLOAT_LIMIT
            hi = col.max if col.max is not None else FLOAT_LIMIT
            add(E.ExpectColumnValuesToBeBetween(column=col.name, min_value=lo, max_value=hi), col.name)
        if col.allowed is not None:
            target = col.name if col.type == "string" else raw_column(col.name)
            add(E.ExpectColumnValuesToBeInSet(column=target, value_set=list(col.allowed)), col.name)
    add(E.ExpectColumnValuesToNotBeNull(column=EVENT_ID), spec.event_id or EVENT_ID)
    add(E.ExpectColumnValuesToBeUnique(column=EVENT_ID), spec.event_id or EVENT_ID)
    fresh = E.ExpectColumnValuesToBeBetween(column=TS_US, min_value=min_ts_us, max_value=max_ts_us)
    fresh.meta = {"name": f"freshness:{spec.timestamp}"}
    if min_ts_us is not None or max_ts_us is not None:
        out.append(fresh)
    return out


def validate(frame: pd.DataFrame, spec: PipelineSpec, min_ts_us: int | None, max_ts_us: int | None) -> GateResult:
    """Run the suite over ``frame`` (typed columns, ``<col>__raw`` text, ``_event_id``, ``_ts_us``,
    ``_row``); rows are named by ``_row``."""
    import great_expectations as gx

    ctx, batch_definition = _context()
    if frame.empty:
        return GateResult({}, {"success": True, "evaluated_rows": 0, "expectations": []})
    with _lock:
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"pipeline_{next(_names)}",
                                                   expectations=build_suite(spec, min_ts_us, max_ts_us)))
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW],
                                                  "return_unexpected_index_query": False})
    ctx.suites.delete(suite.name)
    failed: dict[int, list[str]] = {}
    per_expectation = []
    for r in result.results:
        name = r.expectation_config.meta["name"]
        unexpected = r.result.get("unexpected_index_list") or []
        for item in unexpected:
            failed.setdefault(int(item[ROW]), []).append(name)
        per_expectation.append({"name": name, "success": bool(r.success),
                                "unexpected_count": int(r.result.get("unexpected_count") or 0)})
    stats = result.statistics
    summary = {
        "success": bool(result.success), "evaluated_rows": len(frame),
        "evaluated_expectations": int(stats["evaluated_expectations"]),
        "successful_expectations": int(stats["successful_expectations"]),
        "suite": [e["name"] for e in per_expectation],
        "expectations": sorted(per_expectation, key=lambda e: e["name"]),
        "great_expectations_version": gx.__version__,
    }
    for names in failed.values():
        names.sort()
    return GateResult(failed, summary)
