"""SLO series for Prometheus, computed from the installed tracker when /metrics is scraped.

A custom collector rather than gauges set on a timer: the values are exact at the scrape, and a
gateway that stops and another that starts in the same process (tests) share the one registration.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

from server.slo import tracker as slo_tracker


def window_label(seconds: float) -> str:
    return f"{seconds:g}s"


class SloCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        t = slo_tracker.current()
        if t is None:
            return
        report = t.report()
        value = GaugeMetricFamily("stackserve_slo_value", "per-request objectives: share of the window's requests "
                                  "that met it; rate objectives: the measured rate", labels=["objective", "workload",
                                                                                             "indicator"])
        target = GaugeMetricFamily("stackserve_slo_target", "per-request: the share required; rate: floor or ceiling",
                                   labels=["objective", "workload", "indicator"])
        met = GaugeMetricFamily("stackserve_slo_met", "1 when the objective holds over its window, 0 when not "
                                "(absent with no requests yet)", labels=["objective", "workload"])
        requests = GaugeMetricFamily("stackserve_slo_window_requests", "requests in the objective's window",
                                     labels=["objective", "workload"])
        burn = GaugeMetricFamily("stackserve_slo_burn_rate", "error-budget burn rate: share missing the objective "
                                 "/ (1 - target); 1 spends the budget exactly", labels=["objective", "window"])
        for s in report.objectives:
            o = s.objective
            labels = [o.name, o.workload, o.indicator]
            goal = o.target if o.per_request else (o.floor if o.floor is not None else o.ceiling)
            target.add_metric(labels, float(goal))
            requests.add_metric([o.name, o.workload], s.requests)
            if s.value is not None:
                value.add_metric(labels, s.value)
            if s.met is not None:
                met.add_metric([o.name, o.workload], float(s.met))
            for w, rate in s.burn.items():
                burn.add_metric([o.name, window_label(w)], rate)
        rps = GaugeMetricFamily("stackserve_slo_requests_per_second", "requests recorded per second (shortest burn "
                                "window)", labels=["workload"])
        goodput = GaugeMetricFamily("stackserve_goodput_requests_per_second", "requests per second that met every "
                                    "per-request objective of their workload", labels=["workload"])
        cost_h = GaugeMetricFamily("stackserve_cost_per_hour_usd", "price of the workload's reserved resources",
                                   labels=["workload"])
        cost_tok = GaugeMetricFamily("stackserve_cost_per_1k_output_tokens_usd", "reserved cost / generated tokens",
                                     labels=["workload"])
        cost_ev = GaugeMetricFamily("stackserve_cost_per_1m_events_usd", "reserved cost / events scored",
                                    labels=["workload"])
        for w in report.workloads:
            rps.add_metric([w.workload], w.requests_per_s)
            goodput.add_metric([w.workload], w.goodput_per_s)
            cost_h.add_metric([w.workload], w.cost_per_hour)
            if w.cost_per_1k_output_tokens is not None:
                cost_tok.add_metric([w.workload], w.cost_per_1k_output_tokens)
            if w.cost_per_1m_events is not None:
                cost_ev.add_metric([w.workload], w.cost_per_1m_events)
        yield from (value, target, met, requests, burn, rps, goodput, cost_h, cost_tok, cost_ev)


_registered = False


def register() -> None:
    """Once per process (a second registration of the same series would be refused)."""
    global _registered
    if not _registered:
        REGISTRY.register(SloCollector())
        _registered = True
