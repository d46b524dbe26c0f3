"""deployments/grafana/stackserve.json, checked offline: a Grafana dashboard model whose every
query parses as PromQL (promtool, through recording rules) and names only metrics we export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deployments" / "grafana" / "stackserve.json"
METRIC = re.compile(r"\b(stackserve_[a-z0-9_]+)")
PROMQL_SUFFIXES = ("_bucket", "_sum", "_count")


def _queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_dashboard_model_is_well_formed():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for topic in ("time to first token", "inter-token", "tokens/s", "goodput", "burn", "cost", "batch", "drift"):
        assert topic in titles, f"no panel for {topic}"
    for p in dash["panels"]:
        assert p["targets"] and all(t["refId"] and t["expr"] for t in p["targets"])
        assert {"h", "w", "x", "y"} <= set(p["gridPos"])


def test_every_query_names_an_exported_metric():
    documented = set(re.findall(r"^\| `(stackserve_[a-z0-9_]+)`", (ROOT / "docs" / "metrics.md").read_text(), re.M))
    for expr in _queries():
        for name in METRIC.findall(expr):
            base = next((name[: -len(s)] for s in PROMQL_SUFFIXES if name.endswith(s)), name)
            assert name in documented or base in documented, f"{name} in {expr!r} is not an exported metric"


def test_every_query_is_valid_promql(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian's prometheus package; .ci/run installs it)")
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": e}
                                                         for i, e in enumerate(_queries())]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
