"""``--feature-view NAME[:VERSION]`` resolution and the import-time cost of the feature store.

Why the import test: ``feast`` takes seconds to import; commands that never touch the store
(``pipeline ingest``, ``train anomaly`` without ``--feature-view``) must not pay it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from server.pipeline.feature_store import feature_columns, resolve_view
from server.pipeline.tables import Layout
from tests.support.paths import ROOT


def _layout(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path)
    definition = {"columns": ["f1"], "window": 8, "alpha": 0.1, "kernel": "stream_features/1"}
    registry = {"gold_features": [
        {"version": 1, "table": "gold_features_v1", "definition": definition, "retired": False},
        {"version": 2, "table": "gold_features_v2", "definition": {**definition, "window": 16}, "retired": False},
        {"version": 3, "table": "gold_features_v3", "definition": {**definition, "window": 4}, "retired": True},
    ]}
    layout.feature_views.write_text(json.dumps(registry))
    return layout


@pytest.mark.parametrize(("ref", "table"), [
    ("gold_features", "gold_features_v2"),  # the newest live version (v3 is retired)
    ("gold_features:1", "gold_features_v1"),
    ("gold_features:3", "gold_features_v3"),  # asked for by number: still readable
    ("gold_features_v1", "gold_features_v1"),
])
def test_resolve_view(tmp_path: Path, ref: str, table: str) -> None:
    assert resolve_view(_layout(tmp_path), ref)["table"] == table


@pytest.mark.parametrize("ref", ["gold_features:4", "other", "other:1"])
def test_unknown_view_names_the_known_ones(tmp_path: Path, ref: str) -> None:
    with pytest.raises(ValueError, match=r"known: gold_features:1, gold_features:2, gold_features:3"):
        resolve_view(_layout(tmp_path), ref)


def test_feature_columns_are_raw_columns_then_statistics() -> None:
    assert feature_columns({"columns": ["a", "b"]}) == [
        "a", "b", "a__mean", "b__mean", "a__std", "b__std", "a__z", "b__z", "a__ewma", "b__ewma"]


def test_feast_is_not_imported_by_the_cli_or_the_runner() -> None:
    code = ("import sys, server.cli.main, server.pipeline.runner, server.pipeline.feature_store, "
            "server.anomaly.training; print('feast' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
