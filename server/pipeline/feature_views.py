"""Versions of each gold feature view: a changed definition makes a new version and a new table.

Why versions and not an in-place rewrite: models are trained against one feature definition; a
changed window or column list silently changes what their inputs mean. A new definition gets
``<name>_v<N+1>``; the older tables stay readable (and are listed by status) until retired.
The registry is a small JSON file, replaced atomically (write, fsync, rename).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from server.pipeline.spec import FeatureViewSpec
from server.pipeline.tables import Layout


@dataclass(frozen=True, slots=True)
class ViewVersion:
    """One version of a feature view and the gold table that holds it."""

    name: str
    version: int
    table: str
    definition: dict


def _load(layout: Layout) -> dict[str, list[dict]]:
    try:
        return json.loads(layout.feature_views.read_text())
    except FileNotFoundError:
        return {}


def _save(layout: Layout, registry: dict[str, list[dict]]) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    tmp = layout.feature_views.with_suffix(".json.tmp")
    with open(tmp, "w") as f:
        json.dump(registry, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, layout.feature_views)


def resolve(layout: Layout, view: FeatureViewSpec) -> ViewVersion:
    """The version matching the view's definition: the latest when unchanged, else a new one."""
    registry = _load(layout)
    versions = registry.setdefault(view.name, [])
    definition = view.definition()
    for v in versions:
        if v["definition"] == definition and not v.get("retired"):
            return ViewVersion(view.name, v["version"], v["table"], definition)
    number = max((v["version"] for v in versions), default=0) + 1
    entry = {"version": number, "table": f"{view.name}_v{number}", "definition": definition,
             "created_at": datetime.now(UTC).isoformat(), "retired": False}
    versions.append(entry)
    _save(layout, registry)
    return ViewVersion(view.name, number, entry["table"], definition)


def all_versions(layout: Layout) -> list[dict]:
    """Every version of every view (retired ones flagged), for status."""
    return [{"name": name, **v} for name, versions in sorted(_load(layout).items()) for v in versions]


def retire(layout: Layout, name: str, version: int) -> None:
    """Mark a version retired (its table is left on disk for whoever still reads it)."""
    registry = _load(layout)
    for v in registry.get(name, []):
        if v["version"] == version:
            v["retired"] = True
            _save(layout, registry)
            return
    raise KeyError(f"feature view {name} has no version {version}")
