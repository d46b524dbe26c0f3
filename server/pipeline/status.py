"""``stackserve pipeline status``: per table its rows and Delta version, quarantine counts by
expectation, the last Great Expectations result, checkpoints and feature-view versions.

Why one JSON document: scripts check a run with it (``jq .tables.quarantine.rows``); every number
comes from the tables themselves (Delta versions and counts), not from a log of what a run said.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from server.pipeline import checkpoints, feature_store, feature_views, tables
from server.pipeline.tables import Layout


def _table(path: Any) -> dict[str, Any]:
    if not tables.is_table(path):
        return {"exists": False, "rows": 0, "version": None}
    return {"exists": True, "rows": tables.row_count(path), "version": tables.version(path)}


def quarantine_counts(layout: Layout) -> dict[str, int]:
    """Quarantined rows per failed expectation (a row failing two counts under both)."""
    if not tables.is_table(layout.quarantine):
        return {}
    counts: Counter[str] = Counter()
    for names in tables.read(layout.quarantine).column("failed").to_pylist():
        counts.update(names or [])
    return dict(sorted(counts.items()))


def status(layout: Layout) -> dict[str, Any]:
    """The whole status document."""
    out: dict[str, Any] = {"pipeline_dir": str(layout.root), "tables": {}}
    for name in ("bronze", "silver", "quarantine"):
        out["tables"][name] = _table(getattr(layout, name))
    gold = {}
    for v in feature_views.all_versions(layout):
        snap = feature_store.snapshot(layout, v["table"])  # what Feast serves (no feast import)
        gold[v["table"]] = {**_table(layout.gold(v["table"])), "view": v["name"], "view_version": v["version"],
                            "retired": v.get("retired", False), "definition": v["definition"],
                            "feast_delta_version": snap.delta_version if snap else None}
    out["tables"]["gold"] = gold
    out["quarantine_by_expectation"] = quarantine_counts(layout)
    try:
        out["last_great_expectations_result"] = json.loads(layout.ge_result.read_text())
    except FileNotFoundError:
        out["last_great_expectations_result"] = None
    out["checkpoints"] = checkpoints.all_latest(layout)
    return out
