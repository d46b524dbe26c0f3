"""The benchmark harness's pure parts (bench/harness.py and its helpers), without a server.

Goodput and cost against hand-computed values, the Poisson schedule's statistics, the open loop's
"fire on time, never wait for the previous request", the LLM loops on a fake stream, the gate's
verdict at its threshold, the HTML page, and the whole post-processing of a run (judging, ratios,
tables, plots, results.json, index.html) on cells shaped like real ones.
"""

from __future__ import annotations

import asyncio
import json
import math
import time

import numpy as np
import pytest

from bench import harness
from bench.gate import (
    ANOMALY_LATENCY_ADVANTAGE_MIN,
    ANOMALY_VS_RAY_PROXY_MIN,
    LLM_VS_INPROCESS_MIN,
    GateCheck,
    gate_passed,
    ratio,
)
from bench.goodput import cost_per_unit, goodput, workload_hourly_cost
from bench.html_report import Section, Table, write_index
from bench.loadgen import (
    StreamFailed,
    engine_streamer,
    llm_closed_loop,
    llm_open_loop,
    open_loop,
    poisson_schedule,
    summarize_open_loop,
)
from server import cli
from server.cli import bench as bench_commands
from server.config import Settings
from server.slo.objectives import Objective, Prices, SloFile, load_slo_file

LATENCY = Objective(name="lat", workload="anomaly", indicator="latency_ms", threshold=10, target=0.95)
ERRORS = Objective(name="err", workload="anomaly", indicator="error", target=0.999)
TTFT = Objective(name="ttft", workload="llm", indicator="ttft_ms", threshold=1000, target=0.95)
ITL = Objective(name="itl", workload="llm", indicator="itl_ms", threshold=100, target=0.95)
TOKENS_FLOOR = Objective(name="tok", workload="llm", indicator="output_tokens_per_s", floor=20)


# ----- goodput ---------------------------------------------------------------------------------
def test_goodput_counts_requests_meeting_every_objective():
    # 1, 5 and 10 ms meet "<= 10 ms" (the bound is inclusive); 11 ms misses; NaN (never observed)
    # misses; the failed request misses both objectives. 3 good of 6, over 2 s.
    g = goodput([LATENCY, ERRORS], {"latency_ms": [1, 5, 10, 11, math.nan]}, failed=1, seconds=2.0)
    assert (g.requests, g.good) == (6, 3)
    assert g.goodput_per_s == pytest.approx(1.5)
    assert g.good_share == pytest.approx(0.5)
    assert g.attainment == pytest.approx({"lat": 3 / 6, "err": 5 / 6})
    assert g.attained == {"lat": False, "err": False}


def test_goodput_attained_when_the_share_reaches_the_target():
    g = goodput([LATENCY, ERRORS], {"latency_ms": [1.0] * 1000}, failed=0, seconds=1.0)
    assert g.attained == {"lat": True, "err": True}
    assert g.goodput_per_s == 1000


def test_goodput_of_an_empty_cell_is_zero_with_no_share():
    g = goodput([LATENCY, ERRORS], {"latency_ms": []}, failed=0, seconds=1.0)
    assert (g.requests, g.good, g.goodput_per_s) == (0, 0, 0.0)
    assert math.isnan(g.good_share)
    assert all(math.isnan(v) for v in g.attainment.values())
    assert g.attained == {"lat": None, "err": None}


def test_goodput_of_only_failures_is_zero():
    g = goodput([LATENCY, ERRORS], {"latency_ms": []}, failed=3, seconds=1.5)
    assert (g.requests, g.good, g.goodput_per_s, g.good_share) == (3, 0, 0.0, 0.0)
    assert g.attainment == {"lat": 0.0, "err": 0.0}


def test_failed_requests_are_never_good_even_without_objectives():
    g = goodput([], {"latency_ms": [1.0, 2.0]}, failed=2, seconds=1.0)
    assert (g.requests, g.good) == (4, 2)


def test_goodput_llm_unobserved_itl_meets_but_unobserved_ttft_misses():
    # as server/slo/tracker.py: one token leaves no gap to miss; a missing TTFT proves nothing
    ok = {"ttft_ms": [500, 1500, math.nan, 200], "itl_ms": [50, 50, 50, math.nan], "latency_ms": [1, 2, 3, 4]}
    g = goodput([TTFT, ITL, TOKENS_FLOOR], ok, failed=0, seconds=4.0)
    assert g.good == 2  # requests 1 and 4
    assert g.attainment == pytest.approx({"ttft": 0.5, "itl": 1.0})
    assert "tok" not in g.attainment  # a rate objective is not judged per request


def test_goodput_refuses_an_objective_the_cell_did_not_measure():
    with pytest.raises(ValueError, match="ttft_ms"):
        goodput([TTFT], {"latency_ms": [1.0]}, failed=0, seconds=1.0)
    with pytest.raises(ValueError, match="different lengths"):
        goodput([TTFT, ITL], {"ttft_ms": [1.0], "itl_ms": [1.0, 2.0]}, failed=0, seconds=1.0)


def test_goodput_without_time_is_nan():
    assert math.isnan(goodput([LATENCY], {"latency_ms": [1.0]}, failed=0, seconds=0.0).goodput_per_s)


def test_goodput_uses_the_repository_slo_file():
    objectives = load_slo_file().for_workload("anomaly")
    bound = next(o.threshold for o in objectives if o.indicator == "latency_ms")
    g = goodput(objectives, {"latency_ms": [bound * 0.99, bound * 1.01]}, failed=0, seconds=1.0)
    assert g.good == 1


# ----- cost ------------------------------------------------------------------------------------
def test_cost_per_unit_by_hand():
    # 0.024 USD/h over 1000 events/s: 0.024 / 3600 / 1000 * 1e6 USD per million events
    assert cost_per_unit(0.024, 1000.0, "anomaly") == pytest.approx(0.0066667, rel=1e-4)
    # 0.048 USD/h over 40 tokens/s: 0.048 / 3600 / 40 * 1e3 USD per thousand tokens
    assert cost_per_unit(0.048, 40.0, "llm") == pytest.approx(0.00033333, rel=1e-4)
    assert math.isnan(cost_per_unit(0.048, 0.0, "llm"))
    assert math.isnan(cost_per_unit(0.048, math.nan, "llm"))


def test_hourly_cost_of_the_benchmarked_server():
    settings = Settings(anomaly={"num_cpus": 0.5, "num_replicas": 1}, llm={"num_cpus": 1.0, "backend": "cpu-int4"})
    slo = SloFile(prices=Prices(cpu_core_hour=0.1))
    assert workload_hourly_cost(settings, slo, llm_served=False) == pytest.approx(
        {"anomaly": 0.05, "llm": 0.0, "chat": 0.0})  # the harness's server runs no retrieval
    assert workload_hourly_cost(settings, slo, llm_served=True)["llm"] == pytest.approx(0.1)
    assert settings.llm.enabled and settings.rag.enabled  # the caller's settings are left alone


# ----- Poisson schedule ------------------------------------------------------------------------
def test_poisson_schedule_statistics():
    rate, duration = 200.0, 50.0
    t = poisson_schedule(rate, duration, np.random.default_rng(7))
    expected = rate * duration
    assert abs(t.size - expected) < 4 * math.sqrt(expected)  # Poisson count: sd = sqrt(mean)
    assert t[0] >= 0 and t[-1] < duration and np.all(np.diff(t) > 0)
    gaps = np.diff(t)
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)  # exponential gaps, not a fixed interval


def test_poisson_schedule_is_seeded():
    a = poisson_schedule(50.0, 2.0, np.random.default_rng(1))
    assert np.array_equal(a, poisson_schedule(50.0, 2.0, np.random.default_rng(1)))
    assert not np.array_equal(a, poisson_schedule(50.0, 2.0, np.random.default_rng(2)))


def test_poisson_schedule_rejects_nonsense():
    with pytest.raises(ValueError):
        poisson_schedule(0.0, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError):
        poisson_schedule(1.0, -1.0, np.random.default_rng(0))


# ----- open loop -------------------------------------------------------------------------------
def test_open_loop_fires_on_schedule_without_waiting_and_times_from_due():
    service_s = 0.2

    async def fire(i: int, due: float) -> dict:
        await asyncio.sleep(service_s)  # a fake request's service time: the workload, not synchronisation
        end = time.perf_counter()
        return {"failed": False, "latency_ms": (end - due) * 1e3, "end": end}

    records, span = asyncio.run(open_loop(np.array([0.0, 0.01, 0.02, 0.03]), fire, drain_s=5.0))
    # back to back, four 0.2 s requests take 0.8 s; fired on schedule they overlap
    assert span < 2 * service_s
    assert all(r["latency_ms"] >= service_s * 1e3 for r in records)


def test_open_loop_gives_up_after_the_drain_timeout():
    async def fire(i: int, due: float) -> dict:
        await asyncio.sleep(0.0 if i == 0 else 10.0)  # the second fake request outlasts the drain (workload)
        end = time.perf_counter()
        return {"failed": False, "latency_ms": (end - due) * 1e3, "end": end}

    records, _ = asyncio.run(open_loop(np.array([0.0, 0.001]), fire, drain_s=0.2))
    assert [r["failed"] for r in records] == [False, True]
    out = summarize_open_loop(records, span=1.0, scheduled=2)
    assert (out["requests"], out["errors"], out["req_per_s"]) == (1, 1, 1.0)


# ----- LLM loops on a fake stream --------------------------------------------------------------
async def _three_tokens(prompt: str):
    for _ in range(3):
        await asyncio.sleep(0.01)  # a fake stream's token pacing: the workload, not synchronisation
        yield 1


def test_llm_closed_loop_measures_ttft_itl_and_tokens():
    out = asyncio.run(llm_closed_loop(_three_tokens, concurrency=2, per_client=2))
    assert (out["requests"], out["errors"], out["tokens"]) == (4, 0, 12)
    assert len(out["ttft_ms"]) == len(out["request_itl_p95_ms"]) == len(out["request_latency_ms"]) == 4
    assert len(out["itl_ms"]) == 4 * 2  # two gaps per three-token request
    assert out["ttft_p50_ms"] >= 10 and out["itl_p95_ms"] >= 10
    assert out["tokens_per_s"] == pytest.approx(12 / out["seconds"])


class _Chunk:
    def __init__(self, tokens: list[int], finish: str | None, error: str = ""):
        self.token_ids, self.finish_reason, self.error = tokens, finish, error


class _FakeEngine:
    """Streams two tokens, or fails mid-way: the in-process path's error reaches the error count."""

    def __init__(self, fail: bool):
        self.fail = fail

    async def generate(self, prompt, params):
        yield _Chunk([1], None)
        yield _Chunk([], "error", "boom") if self.fail else _Chunk([2], "length")


def test_engine_streamer_counts_engine_errors_as_failed_requests():
    ok = asyncio.run(llm_closed_loop(engine_streamer(_FakeEngine(fail=False), 2), 1, 2))
    assert (ok["requests"], ok["errors"], ok["tokens"]) == (2, 0, 4)
    bad = asyncio.run(llm_closed_loop(engine_streamer(_FakeEngine(fail=True), 2), 1, 2))
    assert (bad["requests"], bad["errors"]) == (0, 2)
    assert any("boom" in k for k in bad["error_kinds"])


def test_llm_open_loop_counts_failures():
    async def flaky(prompt: str):
        yield 1
        raise StreamFailed("engine stopped")

    out = asyncio.run(llm_open_loop(flaky, np.array([0.0, 0.01]), drain_s=5.0))
    assert (out["scheduled"], out["requests"], out["errors"]) == (2, 0, 2)


# ----- gate ------------------------------------------------------------------------------------
def test_gate_check_passes_at_the_threshold_and_fails_below_or_unmeasured():
    assert GateCheck("x", 2.0, 2.0).passed
    assert not GateCheck("x", 2.0, 1.999).passed
    assert not GateCheck("x", 2.0, math.nan).passed
    assert math.isnan(ratio(100.0, 0.0)) and ratio(10.0, 4.0) == 2.5
    assert gate_passed([GateCheck("a", 1, 1), GateCheck("b", 1, 3)])
    assert not gate_passed([GateCheck("a", 1, 1), GateCheck("b", 1, 0.5)])


def _anomaly_cell(target: str, conc: int, req_per_s: float, p50_ms: float = 2.0) -> dict:
    lat = [1.0, 2.0, 30.0]
    return harness.make_cell("anomaly", "closed", target, f"c={conc}", {
        "requests": len(lat), "errors": 0, "seconds": 1.0, "req_per_s": req_per_s, "p50_ms": p50_ms, "p95_ms": 27.2,
        "p99_ms": 29.7, "latencies_ms": lat}, concurrency=conc)  # fmt: skip


def _llm_cell(target: str, conc: int, tokens_per_s: float, mode: str = "closed") -> dict:
    metrics = asyncio.run(llm_closed_loop(_three_tokens, 1, 1))
    metrics["tokens_per_s"] = tokens_per_s
    load = f"c={conc}" if mode == "closed" else "1 req/s"
    if mode == "open":
        metrics.update(scheduled=1, offered_per_s=1.0)
    return harness.make_cell("llm", mode, target, load, metrics, concurrency=conc if mode == "closed" else None,
                             rate=1.0 if mode == "open" else None)


@pytest.mark.parametrize(("ours", "passes"), [(2.0 * 350, True), (2.0 * 350 - 1, False)])
def test_gate_checks_judge_the_anomaly_ratio_at_concurrency_16(ours, passes):
    assert ANOMALY_VS_RAY_PROXY_MIN == 2.0
    cells = [_anomaly_cell(harness.GATEWAY, 16, ours), _anomaly_cell(harness.RAY_PROXY, 16, 350.0),
             _anomaly_cell(harness.GATEWAY, 1, 1.0), _anomaly_cell(harness.RAY_PROXY, 1, 1000.0)]
    check = harness.gate_checks(cells)[0]
    assert check.measured == pytest.approx(ours / 350.0)
    assert check.passed is passes


@pytest.mark.parametrize(("gateway_p50", "passes"), [(2.0, True), (2.01, False), (math.nan, False)])
def test_gate_checks_judge_single_event_latency_against_the_ray_proxy(gateway_p50, passes):
    """The check that catches small requests no longer being scored in the gateway (~1.0x then)."""
    assert ANOMALY_LATENCY_ADVANTAGE_MIN == 2.0
    cells = [_anomaly_cell(harness.GATEWAY, 1, 1000.0, p50_ms=gateway_p50),
             _anomaly_cell(harness.RAY_PROXY, 1, 250.0, p50_ms=4.0)]
    (check,) = harness.gate_checks(cells)
    assert check.passed is passes


@pytest.mark.parametrize(("ours", "passes"), [(10.0, True), (9.9, False)])
def test_gate_checks_judge_the_llm_ratio_at_concurrency_4(ours, passes):
    assert LLM_VS_INPROCESS_MIN == 0.5
    cells = [_llm_cell(harness.LLM_GRPC, 4, ours), _llm_cell(harness.LLM_INPROCESS, 4, 20.0)]
    (check,) = harness.gate_checks(cells)
    assert check.passed is passes


def test_gate_checks_skip_workloads_that_did_not_run():
    assert harness.gate_checks([_llm_cell(harness.LLM_GRPC, 4, 10.0)]) == []


# ----- HTML ------------------------------------------------------------------------------------
def test_index_html_has_the_tables_and_plots_and_escapes_text(tmp_path):
    section = Section("Anomaly <scoring>", [Table(["target", "req/s"], [["<gateway>", "3383"]], "closed loop")],
                      ["anomaly_closed_loop.png", "a b.png"], ["note & more"])
    path = write_index(tmp_path, "bench", ["CPU: x<y"], [section])
    page = path.read_text()
    assert path == tmp_path / "index.html"
    assert "<td>&lt;gateway&gt;</td>" in page and "<td>3383</td>" in page and "closed loop" in page
    assert '<img src="anomaly_closed_loop.png"' in page and '<img src="a b.png"' in page
    assert "Anomaly &lt;scoring&gt;" in page and "CPU: x&lt;y" in page and "note &amp; more" in page
    assert "<gateway>" not in page and "x<y" not in page


# ----- a whole run's post-processing -------------------------------------------------------------
def test_post_processing_of_a_run(tmp_path):
    slo = load_slo_file()
    cells = [_anomaly_cell(harness.GATEWAY, 16, 3000.0), _anomaly_cell(harness.RAY_PROXY, 16, 450.0),
             _llm_cell(harness.LLM_GRPC, 4, 30.0), _llm_cell(harness.LLM_INPROCESS, 4, 40.0),
             _llm_cell(harness.LLM_GRPC, 0, 25.0, mode="open")]
    anomaly_open = summarize_open_loop([{"failed": False, "latency_ms": 3.0, "end": 0.0},
                                        {"failed": True, "latency_ms": math.nan, "error": "UNAVAILABLE"}], 1.0, 2)
    cells.append(harness.make_cell("anomaly", "open", harness.GATEWAY, "200 req/s", anomaly_open, rate=200.0))
    hourly = {"anomaly": 0.024, "llm": 0.048}
    harness.judge(cells, slo, hourly)
    harness.add_ratios(cells)
    gw = cells[0]
    assert gw["goodput"]["good"] == 2  # 1 and 2 ms meet 10 ms, 30 ms does not
    assert gw["cost_usd"] == pytest.approx(cost_per_unit(0.024, 3000.0, "anomaly"))
    assert gw["vs_peer"] == pytest.approx(3000 / 450) and cells[2]["vs_peer"] == pytest.approx(0.75)
    assert math.isnan(cells[4]["vs_peer"])  # open loop: no peer ratio
    checks = harness.gate_checks(cells)
    assert [c.passed for c in checks] == [True, True]  # no c=1 cells here: no latency check

    sections = harness.build_report(cells, checks, harness.plot_all(cells, tmp_path), "slo.yaml", hourly)
    for name in ("anomaly_closed_loop.png", "anomaly_open_loop.png", "llm_closed_loop.png", "llm_open_loop.png",
                 "llm_cdf.png"):
        assert (tmp_path / name).stat().st_size > 1000
    anomaly_table = sections[0].tables[0]
    assert anomaly_table.rows[0][:3] == [harness.GATEWAY, 16, "3000"]
    assert anomaly_table.rows[0][7] == "6.67x"
    assert "50.0%" in sections[0].tables[1].rows[0]  # the open loop's one answer of two met the SLO

    harness.write_results(tmp_path, {"time": "now"}, cells, checks)
    data = json.loads((tmp_path / "results.json").read_text())  # strict JSON: NaN written as null
    assert data["cells"][4]["vs_peer"] is None and data["gate"][0]["passed"] is True
    assert data["cells"][0]["latencies_ms"] == [1.0, 2.0, 30.0]
    text = harness.stdout_text({"cpu": "Test CPU 9000", "cpus_available": 2, "isa": ["avx2"], "isa_missing": []},
                               sections)
    assert text.startswith("CPU: Test CPU 9000 (2 usable CPUs)")
    assert "| check | threshold | measured | result |" in text and "| pass |" in text
    page = write_index(tmp_path, "bench", ["m"], sections).read_text()
    assert "llm_cdf.png" in page and "gateway req/s vs Ray" in page


# ----- plan and command line -------------------------------------------------------------------
def test_plans_and_workload_selection():
    quick = harness.make_plan(True, ("anomaly",), None)
    assert (quick.duration, quick.anomaly_concurrency, quick.llm_concurrency) == (2.0, (1, 16), (1, 4))
    assert 16 <= quick.llm_max_tokens <= 32
    full = harness.make_plan(False, ("anomaly", "llm"), 3.0)
    assert (full.duration, full.anomaly_concurrency, full.llm_open_duration) == (3.0, (1, 16, 64), 12.0)
    assert quick.cells() == 2 * (2 + 2) and full.cells() == 2 * (3 + 3) + 2 * 2 + 2
    assert harness.parse_workloads(" llm, anomaly,llm") == ("llm", "anomaly")
    assert harness.make_plan(True, ("rag",), None).cells() == 2 * 2 + 1
    with pytest.raises(ValueError):
        harness.parse_workloads("anomaly,vision")
    with pytest.raises(ValueError):
        harness.make_plan(True, ("anomaly",), 0.0)


def test_stackserve_bench_forwards_its_options_to_the_harness():
    argv = ["bench", "--quick", "--gate", "--workloads", "anomaly", "--duration", "1", "--out", "o",
            "--data-dir", "D"]
    args = cli.build_parser().parse_args(argv)
    assert args.func is bench_commands.cmd_bench
    again = cli.build_parser().parse_args(["bench", *bench_commands._bench_argv(args)])
    keys = ("quick", "gate", "workloads", "duration", "out", "data_dir", "config", "log_level")
    assert {k: getattr(again, k) for k in keys} == {k: getattr(args, k) for k in keys}
    plain = cli.build_parser().parse_args(["bench"])
    assert bench_commands._bench_argv(plain) == ["--workloads", "anomaly,llm,rag"]
