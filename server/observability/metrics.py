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
GRPC_BUDGET = Counter(
    "stackserve_grpc_request_budget_total",
    "calls that carried a latency budget (x-latency-budget-ms header, else the gRPC deadline), by whether "
    "they met it",
    ["method", "met"],
)
GRPC_IN_FLIGHT = Gauge("stackserve_grpc_requests_in_flight", "gRPC calls being served", ["method"])
EVENT_LOOP_LAG = Histogram(
    "stackserve_event_loop_lag_seconds",
    "how much later than asked the event loop ran a 10 ms timer: time something held the loop",
    ["loop"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)

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
HTTP_REQUESTS = Counter(
    "stackserve_http_requests_total",
    "OpenAI-compatible HTTP API requests by path and HTTP status",
    ["path", "status"],
)
ANOMALY_EVENTS = Counter("stackserve_anomaly_events_total", "events scored", ["model"])
ONLINE_FEATURES_SECONDS = Histogram(
    "stackserve_anomaly_online_features_seconds",
    "one Score request's online feature-store lookup (requests sent by entity key and event time)",
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
ANOMALY_IN_GATEWAY = Counter(
    "stackserve_anomaly_in_gateway_events_total",
    "events scored by the gateway's own copy of the models (anomaly.in_gateway_max_events), not by a Ray replica",
    ["model"],
)
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
DRIFT_STATUS = Gauge("stackserve_drift_status", "0 ok, 1 warn, 2 alert (server/drift/monitor.py)", ["model"])
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

# ----- LLM (vLLM's vocabulary, so its dashboards map over; docs/design/llm.md) ----------------
# Measured in the gateway: TTFT and end-to-end from the call's arrival (what a client sees,
# Ray crossings included); inter-token latency and queue time from the engine's own clock.
# Labels: `model` (one per served model) and `rpc` on the request counter only.
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0)
ITL_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
E2E_BUCKETS = (0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0)
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LLM_TTFT = Histogram(
    "stackserve_llm_time_to_first_token_seconds", "call arrival to the first generated token", ["model"],
    buckets=TTFT_BUCKETS,
)
LLM_ITL = Histogram(
    "stackserve_llm_inter_token_latency_seconds", "time between consecutive tokens of one request", ["model"],
    buckets=ITL_BUCKETS,
)
LLM_E2E = Histogram(
    "stackserve_llm_e2e_request_latency_seconds", "call arrival to the last token", ["model"], buckets=E2E_BUCKETS
)
LLM_QUEUE = Histogram(
    "stackserve_llm_request_queue_time_seconds", "time waiting for a KV-cache slot before prefill", ["model"],
    buckets=QUEUE_BUCKETS,
)
LLM_PROMPT_TOKENS = Counter("stackserve_llm_prompt_tokens_total", "prompt tokens prefilled", ["model"])
LLM_GENERATION_TOKENS = Counter("stackserve_llm_generation_tokens_total", "tokens generated", ["model"])
LLM_REQUESTS = Counter(
    "stackserve_llm_requests_total",
    "LLM requests that reached the engine, by how they ended: stop | length | cancelled | deadline | error",
    ["model", "rpc", "finish_reason"],
)
LLM_RUNNING = Gauge("stackserve_llm_num_requests_running", "sequences holding a KV-cache slot", ["model"])
LLM_WAITING = Gauge("stackserve_llm_num_requests_waiting", "requests queued for a KV-cache slot", ["model"])
LLM_KV_USAGE = Gauge(
    "stackserve_llm_kv_cache_usage_ratio", "share of KV-cache blocks held by running sequences (0..1)", ["model"]
)
#: Engine totals read with the gauges (``LLMEngine.counters``), as vLLM names them: speculative
#: decoding's draft and accepted tokens, preemptions, prefix-cache query and hit tokens.
LLM_SPEC_DRAFT = Counter("stackserve_llm_spec_decode_draft_tokens_total",
                         "n-gram draft tokens verified by speculative decoding", ["model"])
LLM_SPEC_ACCEPTED = Counter("stackserve_llm_spec_decode_accepted_tokens_total",
                            "draft tokens the sampler confirmed (accepted / draft = acceptance)", ["model"])
LLM_PREEMPTIONS = Counter("stackserve_llm_preemptions_total",
                          "running requests that gave their KV slot to a more urgent one", ["model"])
LLM_PREFIX_QUERIES = Counter("stackserve_llm_prefix_cache_queries_total",
                             "prompt tokens looked up in the prefix cache", ["model"])
LLM_PREFIX_HITS = Counter("stackserve_llm_prefix_cache_hits_total",
                          "prompt tokens whose K/V came from the prefix cache", ["model"])
LLM_ENGINE_COUNTERS = {"spec_draft_tokens": LLM_SPEC_DRAFT, "spec_accepted_tokens": LLM_SPEC_ACCEPTED,
                       "preemptions": LLM_PREEMPTIONS, "prefix_cache_query_tokens": LLM_PREFIX_QUERIES,
                       "prefix_cache_hit_tokens": LLM_PREFIX_HITS}  # fmt: skip
LLM_BATCH_SIZE = Histogram(
    "stackserve_llm_batch_size", "sequences per engine step (steps that sampled a token)", ["model"],
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256),
)


GUARDRAIL_VERDICTS = Counter(
    "stackserve_guardrail_verdicts_total",
    "guardrail decisions (server/guardrails): rail, action, reason code, shadow mode",
    ["rail", "action", "reason", "shadow"],
)
GUARDRAIL_SECONDS = Histogram(
    "stackserve_guardrail_duration_seconds", "time each rail took per request", ["rail"], buckets=LATENCY_BUCKETS
)
CHAT_OUTCOMES = Counter(
    "stackserve_chat_answers_total", "ChatService answers: answered | extractive | abstained | refused", ["outcome"]
)
RATE_LIMIT_STORE_FALLBACKS = Counter(
    "stackserve_rate_limit_store_fallbacks_total",
    "tenant limit decisions made by this gateway's own bucket because the shared store "
    "(security.limits_store) did not answer",
)


def serve_metrics(host: str, port: int, certfile: str | None = None, keyfile: str | None = None,
                  client_cafile: str | None = None) -> tuple[object, int]:
    """Start the /metrics HTTP endpoint; returns (server, bound port) so port 0 works. With a
    certificate it is HTTPS, and with a client CA the scraper must present a certificate it signed."""
    server, _thread = start_http_server(port, addr=host, certfile=certfile, keyfile=keyfile,
                                        client_cafile=client_cafile, client_auth_required=client_cafile is not None)
    return server, int(server.server_port)
