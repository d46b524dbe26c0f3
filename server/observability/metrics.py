"""Every Prometheus series the gateway exports, defined once.

Histograms, not summaries (they aggregate across replicas in PromQL); names carry
the ``stackserve_`` prefix and their unit; counters for events and hits so rates
come from PromQL.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, start_http_server

disable_created_metrics()  # the *_created series double the scrape size and no dashboard uses them

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)

GRPC_REQUESTS = Counter(
    "stackserve_grpc_requests_total", "gRPC calls finished, by method and status code", ["method", "code"]
)
GRPC_LATENCY = Histogram(
    "stackserve_grpc_request_duration_seconds",
    "gRPC call latency from arrival to the last response",
    ["method"],
    buckets=LATENCY_BUCKETS,
)
GRPC_IN_FLIGHT = Gauge("stackserve_grpc_requests_in_flight", "gRPC calls being served", ["method"])

BATCH_EVENTS = Histogram(
    "stackserve_gateway_batch_events",
    "events per coalesced call into Ray",
    ["model"],
    buckets=BATCH_BUCKETS,
)
BATCH_REQUESTS = Histogram(
    "stackserve_gateway_batch_requests",
    "client requests merged into one call into Ray",
    ["model"],
    buckets=BATCH_BUCKETS,
)
QUEUE_EVENTS = Gauge("stackserve_gateway_queue_events", "events waiting in the coalescer")
QUEUE_REJECTED = Counter(
    "stackserve_gateway_rejected_total", "requests shed because the queue was full", ["model"]
)
ANOMALY_EVENTS = Counter("stackserve_anomaly_events_total", "events scored", ["model"])
ANOMALY_FLAGGED = Counter("stackserve_anomaly_flagged_total", "events scored as anomalies", ["model"])
STREAM_ENTITIES = Gauge("stackserve_anomaly_stream_entities", "entities with live stream state", ["model"])


FEATURE_PSI = Gauge(
    "stackserve_feature_drift_psi", "PSI of recent inputs against the training reference", ["model", "feature"]
)
FEATURE_KS = Gauge(
    "stackserve_feature_drift_ks_statistic", "two-sample KS statistic, recent inputs vs reference", ["model", "feature"]
)
FEATURE_KS_P = Gauge("stackserve_feature_drift_ks_pvalue", "two-sample KS p-value", ["model", "feature"])
SCORE_PSI = Gauge("stackserve_score_drift_psi", "PSI of recent scores against validation scores", ["model"])
SCORE_KS_P = Gauge("stackserve_score_drift_ks_pvalue", "KS p-value of recent scores vs validation scores", ["model"])
DRIFT_STATUS = Gauge("stackserve_drift_status", "0 ok, 1 warn, 2 alert (server/anomaly/drift_monitor.py)", ["model"])
DRIFT_WINDOW = Gauge("stackserve_drift_window_events", "events in the drift window", ["model"])

ROLLOUT_STATE = Gauge(
    "stackserve_rollout_state", "challenger rollout: 0 running, 1 rolled back, 2 promoted (server/rollout)", ["model"]
)
ROLLOUT_REQUESTS = Counter(
    "stackserve_rollout_requests_total",
    "requests per rollout arm; outcome ok | error | dropped (shadow copy shed) | fallback (answered by champion)",
    ["model", "arm", "outcome"],
)
ROLLOUT_TRANSITIONS = Counter("stackserve_rollout_transitions_total", "rollout state changes", ["model", "to"])
ROLLOUT_SCORE_PSI = Gauge("stackserve_rollout_score_psi", "PSI of challenger scores vs champion scores", ["model"])


def serve_metrics(host: str, port: int) -> tuple[object, int]:
    """Start the /metrics HTTP endpoint; returns (server, bound port) so port 0 works."""
    server, _thread = start_http_server(port, addr=host)
    return server, int(server.server_port)
