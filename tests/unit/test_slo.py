"""SLO objectives, the live tracker's arithmetic (attainment, goodput, burn rate, cost), the Prometheus
series it exports, and the alerting rules generated from the same file."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.core import REGISTRY

from server.config import load_settings
from server.slo import exporter
from server.slo import tracker as slo
from server.slo.cost import hourly_cost
from server.slo.objectives import Prices, SloFile, default_slo_path, load_slo_file
from server.slo.rules import alert_rules, alert_rules_yaml
from server.slo.table import objective_rows, workload_rows
from server.slo.tracker import SloTracker


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _slo(**overrides) -> SloFile:
    raw = {
        "burn_windows_s": [60, 600],
        "objectives": [
            {"name": "lat", "workload": "anomaly", "indicator": "latency_ms", "threshold": 10, "target": 0.9,
             "window_s": 60},
            {"name": "err", "workload": "anomaly", "indicator": "error", "target": 0.99, "window_s": 600},
            {"name": "ttft", "workload": "llm", "indicator": "ttft_ms", "threshold": 500, "target": 0.95,
             "window_s": 60},
            {"name": "itl", "workload": "llm", "indicator": "itl_ms", "threshold": 50, "target": 0.95, "window_s": 60},
            {"name": "tps", "workload": "llm", "indicator": "output_tokens_per_s", "floor": 10, "window_s": 60},
            {"name": "cost", "workload": "llm", "indicator": "cost_per_1k_output_tokens", "ceiling": 0.01,
             "window_s": 60},
        ],
        **overrides,
    }
    return SloFile.model_validate(raw)


def test_the_shipped_slo_file_is_valid():
    slo_file = load_slo_file(default_slo_path())
    assert {o.workload for o in slo_file.objectives} == {"anomaly", "llm", "chat"}
    assert slo_file.horizon_s >= 3600


@pytest.mark.parametrize("objective, message", [
    ({"indicator": "ttft_ms", "workload": "anomaly", "threshold": 5, "target": 0.9}, "has no ttft_ms"),
    ({"indicator": "latency_ms", "workload": "anomaly", "threshold": 5}, "needs a target"),
    ({"indicator": "latency_ms", "workload": "anomaly", "target": 0.9}, "needs a threshold"),
    ({"indicator": "error", "workload": "llm", "threshold": 1, "target": 0.9}, "takes no threshold"),
    ({"indicator": "output_tokens_per_s", "workload": "llm"}, "exactly one of floor, ceiling"),
    ({"indicator": "output_tokens_per_s", "workload": "llm", "floor": 1, "target": 0.9}, "for per-request"),
])
def test_bad_objectives_are_refused_with_the_reason(objective, message):
    with pytest.raises(ValueError, match=message):
        SloFile.model_validate({"objectives": [{"name": "x", **objective}]})


def test_duplicate_names_and_unreadable_files_are_refused(tmp_path):
    one = {"name": "x", "workload": "llm", "indicator": "error", "target": 0.9}
    with pytest.raises(ValueError, match="unique"):
        SloFile.model_validate({"objectives": [one, one]})
    with pytest.raises(ValueError, match="cannot read"):
        load_slo_file(tmp_path / "missing.yaml")
    bad = tmp_path / "slo.yaml"
    bad.write_text("objectives: [{name: x, workload: llm, indicator: typo}]")
    with pytest.raises(ValueError, match=str(bad)):
        load_slo_file(bad)


def test_attainment_goodput_and_burn_rate():
    clock = Clock()
    t = SloTracker(_slo(), {"llm": 3.6, "anomaly": 0.36}, clock)
    # 100 anomaly calls in one second: 80 fast, 15 slow, 5 failed
    for _ in range(80):
        t.record("anomaly", failed=False, latency_s=0.002, events=10)
    for _ in range(15):
        t.record("anomaly", failed=False, latency_s=0.050, events=10)
    for _ in range(5):
        t.record("anomaly", failed=True, latency_s=0.001)
    rep = {s.objective.name: s for s in t.report().objectives}
    assert rep["lat"].requests == 100 and rep["lat"].value == pytest.approx(0.80) and rep["lat"].met is False
    # burn: 20% missing against a 10% budget = 2x, in both windows (all requests are recent)
    assert rep["lat"].burn == {60: pytest.approx(2.0), 600: pytest.approx(2.0)}
    assert rep["err"].value == pytest.approx(0.95) and rep["err"].burn[60] == pytest.approx(5.0)
    anomaly = next(w for w in t.report().workloads if w.workload == "anomaly")
    # uptime is clamped to >= 1 s: 80 requests met both objectives
    assert anomaly.goodput_per_s == pytest.approx(80.0) and anomaly.requests_per_s == pytest.approx(100.0)
    assert anomaly.events_per_s == pytest.approx(950.0)
    assert anomaly.cost_per_1m_events == pytest.approx(0.36 / 3600 / 950 * 1e6)

    # a minute later the latency window has forgotten them; the 10-minute error window has not
    clock.t += 61
    t.record("anomaly", failed=False, latency_s=0.001, events=1)
    rep = {s.objective.name: s for s in t.report().objectives}
    assert rep["lat"].requests == 1 and rep["lat"].met is True and rep["lat"].burn[60] == 0.0
    assert rep["err"].requests == 101 and rep["lat"].burn[600] == pytest.approx((20 / 101) / 0.1)


def test_llm_objectives_itl_rates_and_cost():
    clock = Clock()
    t = SloTracker(_slo(), {"llm": 3.6}, clock)
    assert next(s for s in t.report().objectives if s.objective.name == "ttft").met is None  # no data yet
    t.record("llm", failed=False, latency_s=1.0, ttft_s=0.2, itl_s=0.02, output_tokens=100)
    t.record("llm", failed=False, latency_s=1.0, ttft_s=0.9, itl_s=0.02, output_tokens=100)  # slow first token
    t.record("llm", failed=False, latency_s=0.1, ttft_s=0.1, itl_s=None, output_tokens=1)  # one token: no gap
    t.record("llm", failed=True, latency_s=0.1)  # failed: misses every per-request objective
    clock.t += 9.5  # 10 seconds of uptime
    rep = {s.objective.name: s for s in t.report().objectives}
    assert rep["ttft"].value == pytest.approx(2 / 4) and rep["itl"].value == pytest.approx(3 / 4)
    assert rep["tps"].value == pytest.approx(201 / 9.5) and rep["tps"].met is True
    # $3.6/h = $0.001/s; 201 tokens in 9.5 s → cost per 1K tokens
    assert rep["cost"].value == pytest.approx(0.001 / (201 / 9.5) * 1e3) and rep["cost"].met is False
    llm = next(w for w in t.report().workloads if w.workload == "llm")
    assert llm.goodput_per_s == pytest.approx(2 / 9.5)  # the 1st and 3rd met every per-request objective
    with pytest.raises(ValueError, match="unknown workload"):
        t.record("video", failed=False)


def test_client_errors_and_cancellations_are_not_recorded():
    t = SloTracker(_slo(), {}, Clock())
    slo.install(t)
    try:
        for code in ("INVALID_ARGUMENT", "CANCELLED", "NOT_FOUND", "OK"):
            slo.record_failure("anomaly", code, 0.0)
        assert t.report().objectives[0].requests == 0
        slo.record_failure("anomaly", "UNAVAILABLE", 0.0)
        assert t.report().objectives[1].value == 0.0
    finally:
        slo.install(None)


def test_cost_charges_reserved_resources_and_needs_a_gpu_price():
    settings = load_settings(None, anomaly={"num_cpus": 0.5, "num_replicas": 2}, llm={"num_cpus": 1.0})
    cost = hourly_cost(settings, Prices(cpu_core_hour=0.05, gpu_hour={"nvidia-h200": 4.0}))
    assert cost["anomaly"] == pytest.approx(0.05) and cost["llm"] == pytest.approx(0.05)
    gpu = load_settings(None, llm={"backend": "triton"})
    assert hourly_cost(gpu, Prices(cpu_core_hour=0.05, gpu_hour={"nvidia-h200": 4.0}))["llm"] == pytest.approx(4.05)
    with pytest.raises(ValueError, match="gpu_hour"):
        hourly_cost(gpu, Prices())


def test_exported_series_and_the_slo_table():
    exporter.register()
    exporter.register()  # once per process, however many gateways start
    t = SloTracker(_slo(), {"llm": 3.6, "anomaly": 0.36}, Clock())
    slo.install(t)
    try:
        for ms in (1, 2, 50):
            t.record("anomaly", failed=False, latency_s=ms / 1e3, events=1)
        body = generate_latest(REGISTRY).decode()
    finally:
        slo.install(None)
    assert 'stackserve_slo_value{indicator="latency_ms",objective="lat",workload="anomaly"} 0.666' in body
    assert 'stackserve_slo_met{objective="lat",workload="anomaly"} 0.0' in body
    assert 'stackserve_slo_burn_rate{objective="lat",window="60s"}' in body
    assert 'stackserve_goodput_requests_per_second{workload="anomaly"} 2.0' in body
    assert "stackserve_slo_met" not in generate_latest(REGISTRY).decode()  # no tracker: no series

    from prometheus_client.parser import text_string_to_metric_families

    series: dict = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            if s.name.startswith(("stackserve_slo_", "stackserve_goodput_", "stackserve_cost_")):
                series.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    rows = {r[0]: r for r in objective_rows(series)}
    assert rows["lat"][6] == "MISSED" and rows["ttft"][6] == "no data" and "60s: 3.33" in rows["lat"][7]
    assert [r[0] for r in workload_rows(series)] == ["anomaly", "chat", "llm"]


def test_alert_rules_cover_every_objective_and_pass_promtool(tmp_path):
    slo_file = load_slo_file(default_slo_path())
    rules = alert_rules(slo_file)["groups"][0]["rules"]
    per_request = [o for o in slo_file.objectives if o.per_request]
    assert len(rules) == 2 * len(per_request) + (len(slo_file.objectives) - len(per_request))
    fast = next(r for r in rules if r["alert"] == "StackserveSLOFastBurn")
    assert 'window="300s"} > 14.4 and' in fast["expr"] and 'window="3600s"} > 14.4' in fast["expr"]
    path = tmp_path / "rules.yml"
    path.write_text(alert_rules_yaml(slo_file))
    assert yaml.safe_load(path.read_text()) == alert_rules(slo_file)
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian's prometheus package; .ci/run installs it)")
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout + out.stderr
