"""docs/metrics.md lists every metric the gateway exports, with its type and labels."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

import server.observability.metrics as metrics_module
from server.slo import exporter
from server.slo import tracker as slo
from server.slo.objectives import load_slo_file
from server.slo.tracker import SloTracker

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(stackserve_[a-z0-9_]+)` \| (\w+) \| ([^|]*) \|", re.M)


def _documented() -> dict[str, tuple[str, set[str]]]:
    return {m[1]: (m[2], {x.strip() for x in m[3].split(",") if x.strip() not in ("", "-")})
            for m in ROW.finditer(DOC.read_text())}


def _exported() -> dict[str, tuple[str, set[str]]]:
    out = {}
    for obj in vars(metrics_module).values():
        if isinstance(obj, MetricWrapperBase):
            name = obj._name + ("_total" if obj._type == "counter" else "")
            out[name] = (obj._type, set(obj._labelnames))
    t = SloTracker(load_slo_file(), {"anomaly": 1.0, "llm": 1.0, "chat": 1.0})
    for w in ("anomaly", "llm", "chat"):
        t.record(w, failed=False, latency_s=0.001, ttft_s=0.001, itl_s=0.001, output_tokens=5, events=5)
    slo.install(t)
    try:
        for fam in exporter.SloCollector().collect():
            labels = set().union(*(s.labels for s in fam.samples)) if fam.samples else set()
            out[fam.name] = (fam.type, labels)
    finally:
        slo.install(None)
    return out


def test_every_exported_metric_is_documented_with_its_type_and_labels():
    documented, exported = _documented(), _exported()
    missing = sorted(set(exported) - set(documented))
    assert not missing, f"add to docs/metrics.md: {missing}"
    stale = sorted(set(documented) - set(exported))
    assert not stale, f"docs/metrics.md lists metrics nobody exports: {stale}"
    wrong = {n: (documented[n], exported[n]) for n in exported if documented[n] != exported[n]}
    assert not wrong, f"type or labels differ (doc, code): {wrong}"
