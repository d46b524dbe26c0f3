"""The ``stackserve slo`` table, read from a running server's /metrics (what Prometheus sees)."""

from __future__ import annotations

import urllib.request
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str, timeout: float = 10.0) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Metric family name -> [(labels, value)] for the stackserve SLO and cost series."""
    body = urllib.request.urlopen(url, timeout=timeout).read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for fam in text_string_to_metric_families(body):
        if fam.name.startswith(("stackserve_slo_", "stackserve_goodput_", "stackserve_cost_")):
            for s in fam.samples:
                out[s.name].append((dict(s.labels), float(s.value)))
    return out


def objective_rows(series: dict[str, list[tuple[dict[str, str], float]]]) -> list[list[str]]:
    by_obj: dict[str, dict[str, object]] = defaultdict(dict)
    for name, key in (("stackserve_slo_value", "value"), ("stackserve_slo_target", "target"),
                      ("stackserve_slo_met", "met"), ("stackserve_slo_window_requests", "requests")):
        for labels, v in series.get(name, []):
            row = by_obj[labels["objective"]]
            row[key] = v
            row.setdefault("workload", labels.get("workload", ""))
            row.setdefault("indicator", labels.get("indicator", ""))
    for labels, v in series.get("stackserve_slo_burn_rate", []):
        by_obj[labels["objective"]].setdefault("burn", []).append(f"{labels['window']}: {v:.2f}")  # type: ignore[union-attr]
    rows = []
    for name, r in by_obj.items():
        met = r.get("met")
        state = "no data" if met is None else ("met" if met else "MISSED")
        value = r.get("value")
        rows.append([name, str(r.get("workload", "")), str(r.get("indicator", "")),
                     "-" if value is None else f"{value:.4g}", f"{r.get('target', float('nan')):.4g}",
                     str(int(r.get("requests", 0))), state, ", ".join(r.get("burn", [])) or "-"])  # type: ignore[arg-type]
    return rows


def workload_rows(series: dict[str, list[tuple[dict[str, str], float]]]) -> list[list[str]]:
    rows: dict[str, dict[str, float]] = defaultdict(dict)
    for name in ("stackserve_slo_requests_per_second", "stackserve_goodput_requests_per_second",
                 "stackserve_cost_per_hour_usd", "stackserve_cost_per_1k_output_tokens_usd",
                 "stackserve_cost_per_1m_events_usd"):
        for labels, v in series.get(name, []):
            rows[labels["workload"]][name] = v
    fmt = lambda d, k, f: f.format(d[k]) if k in d else "-"  # noqa: E731
    return [[w, fmt(d, "stackserve_slo_requests_per_second", "{:.2f}"),
             fmt(d, "stackserve_goodput_requests_per_second", "{:.2f}"),
             fmt(d, "stackserve_cost_per_hour_usd", "{:.4f}"),
             fmt(d, "stackserve_cost_per_1k_output_tokens_usd", "{:.5f}"),
             fmt(d, "stackserve_cost_per_1m_events_usd", "{:.4f}")] for w, d in sorted(rows.items())]
