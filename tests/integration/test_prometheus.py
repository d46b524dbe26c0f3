"""A real Prometheus (Debian's package) scrapes a real gateway on 127.0.0.1; the test queries its HTTP
API and sees the series move under load: the LLM's time-to-first-token p95 (histogram_quantile over
the scraped buckets), the SLO tracker's window counts, goodput and cost, and `stackserve slo`."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from server.client import AnomalyClient, LLMClient, score_request
from server.config import load_settings
from server.gateway.server import start_gateway
from server.launcher import free_port
from server.placement import local_anomaly_endpoint
from tests.support.llm_fixtures import LLM_TEST_CONFIG
from tests.support.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

TTFT_P95 = ("histogram_quantile(0.95, sum by (le) "
            "(rate(stackserve_llm_time_to_first_token_seconds_bucket[1m])))")
ANOMALY_WINDOW = 'stackserve_slo_window_requests{objective="anomaly-latency-p95"}'


def _query(port: int, expr: str) -> float | None:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = json.loads(urllib.request.urlopen(url, timeout=5).read())
    assert body["status"] == "success", body
    result = body["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if np.isnan(value) else value


def _wait_for(port: int, expr: str, ok, timeout: float = 45.0) -> float | None:
    last: dict[str, float | None] = {"value": None}

    def check() -> tuple[float | None] | None:  # a 1-tuple: a value of 0.0 or None can satisfy ``ok``
        try:
            last["value"] = _query(port, expr)
        except OSError:  # Prometheus still starting
            return None
        return (last["value"],) if ok(last["value"]) else None

    try:
        return wait_until(check, timeout, f"{expr} satisfying the check", interval=0.5)[0]
    except WaitTimeout as err:
        raise WaitTimeout(f"{err}; last value {last['value']}") from None


def test_prometheus_sees_ttft_and_slo_series_move_under_load(trained, settings, tmp_path, capsys, shared_llm):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("prometheus not installed (Debian's prometheus package; .ci/run installs it)")
    cfg = load_settings(None, data_dir=str(settings.data_dir), gateway={"port": 0, "metrics_port": 0, "openai_port": 0},
                        llm=LLM_TEST_CONFIG, rag={"enabled": False})

    async def main():
        gw = await start_gateway(cfg, local_anomaly_endpoint(cfg), shared_llm, None)
        prom_port = free_port()
        target = [{"targets": [f"127.0.0.1:{gw.metrics_port}"]}]
        relabel = yaml.safe_load((ROOT / "deployments" / "prometheus" / "vllm_relabel.yml").read_text())
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": "stackserve", "static_configs": target},
                # the shipped relabel rules: the same series under vLLM's names, for vLLM dashboards
                {"job_name": "stackserve-vllm-compat", "static_configs": target, "metric_relabel_configs": relabel},
            ]}))
        log = open(tmp_path / "prometheus.log", "w")  # noqa: SIM115 (closed in finally)
        proc = subprocess.Popen(
            [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=log, stderr=subprocess.STDOUT)
        try:
            await gw.wait_ready(180)
            for job in ("stackserve", "stackserve-vllm-compat"):
                await asyncio.to_thread(_wait_for, prom_port, f'up{{job="{job}"}}', lambda v: v == 1.0)
            before = await asyncio.to_thread(_wait_for, prom_port, ANOMALY_WINDOW, lambda v: v is not None)
            assert before == 0.0  # the series exists before any request, at zero
            # the budget counters are process-wide (earlier gateways in this process add to them)
            score = 'method="/stackserve.v1.AnomalyService/Score"'
            budget = {m: f'stackserve_grpc_request_budget_total{{{score},met="{m}"}}' for m in ("true", "false")}
            start = {m: await asyncio.to_thread(_query, prom_port, q) or 0.0 for m, q in budget.items()}
            vllm_count = 'sum(vllm:time_to_first_token_seconds_count{model_name!=""})'
            vllm_start = await asyncio.to_thread(_query, prom_port, vllm_count) or 0.0

            def load() -> None:
                addr = f"127.0.0.1:{gw.port}"
                with AnomalyClient(addr) as a, LLMClient(addr) as c:
                    n = len(a.list_models()[0].feature_names)
                    rng = np.random.default_rng(0)
                    for _ in range(30):
                        a.score(rng.normal(size=(4, n)))  # 30 s deadline: a budget met
                    # a latency class no server can meet (1 µs): recorded as missed, still answered
                    a.stub.Score(score_request(rng.normal(size=(1, n))), metadata=(("x-latency-budget-ms", "0.001"),))
                    for i in range(4):
                        list(c.generate(f"Count to {i + 3}:", max_tokens=8, ignore_eos=True))

            await asyncio.to_thread(load)
            after = await asyncio.to_thread(_wait_for, prom_port, ANOMALY_WINDOW, lambda v: v is not None and v >= 31)
            assert after == 31.0
            met = await asyncio.to_thread(_wait_for, prom_port, budget["true"],
                                          lambda v: v is not None and v >= start["true"] + 30)
            missed = await asyncio.to_thread(_wait_for, prom_port, budget["false"],
                                             lambda v: v is not None and v >= start["false"] + 1)
            assert (met - start["true"], missed - start["false"]) == (30.0, 1.0)
            ttft = await asyncio.to_thread(_wait_for, prom_port, TTFT_P95, lambda v: v is not None and v > 0)
            assert 0 < ttft < 30
            vllm = await asyncio.to_thread(_wait_for, prom_port, vllm_count,
                                           lambda v: v is not None and v >= vllm_start + 4)
            assert vllm - vllm_start == 4.0  # vLLM's name and label, same count
            assert await asyncio.to_thread(_query, prom_port, "vllm:kv_cache_usage_perc") is not None
            goodput = await asyncio.to_thread(
                _wait_for, prom_port, 'stackserve_goodput_requests_per_second{workload="anomaly"}',
                lambda v: v is not None and v > 0)
            assert goodput > 0
            tokens = await asyncio.to_thread(
                _wait_for, prom_port, 'stackserve_cost_per_1k_output_tokens_usd{workload="llm"}',
                lambda v: v is not None and v > 0)
            assert tokens > 0

            from server.cli import main as cli_main

            code = await asyncio.to_thread(
                cli_main, ["slo", "--metrics-url", f"http://127.0.0.1:{gw.metrics_port}/metrics"])
            out = capsys.readouterr().out
            assert code == 0 and "anomaly-latency-p95" in out and "goodput" in out
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
            await gw.stop()

    asyncio.run(main())
