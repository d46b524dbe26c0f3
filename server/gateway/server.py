"""Build and run the grpc.aio gateway: services, health, reflection, limits, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from server.config import GatewayConfig, Settings
from server.gateway.anomaly_endpoint import AnomalyEndpoint
from server.gateway.anomaly_service import AnomalyService
from server.gateway.chat_service import ChatService
from server.gateway.health_monitor import HealthMonitor
from server.gateway.interceptors.auth import AuthInterceptor
from server.gateway.interceptors.observability import ObservabilityInterceptor
from server.gateway.llm_endpoint import LLMEndpoint
from server.gateway.llm_router import LLMRouter
from server.gateway.llm_service import LLMService
from server.gateway.openai_http import serve_openai
from server.gateway.retriever_service import RetrieverService
from server.gateway.warmup import (
    ANOMALY_SERVICE,
    CHAT_SERVICE,
    LLM_SERVICE,
    RETRIEVER_SERVICE,
    ChatWiring,
    chat_serving,
    warm_up_anomaly,
    warm_up_llms,
    warm_up_retriever,
)
from server.guardrails.llm_doors import LLMGuard
from server.observability import tracing
from server.observability.logs import ACCESS, RotatingFile, install_hash_key, log_event
from server.observability.loop_lag import LoopLagProbe
from server.observability.metrics import serve_metrics
from server.protocol.registration import add_service
from server.rag.retrieval_workload import RetrievalWorkload
from server.security import keyed_hash, tls
from server.security.access_policy import AccessPolicy
from server.slo import exporter as slo_exporter
from server.slo import tracker as slo
from server.slo.cost import hourly_cost
from server.slo.objectives import load_slo_file
from server.slo.tracker import SloTracker

log = logging.getLogger("stackserve.gateway")


@dataclass(slots=True)
class Gateway:
    server: grpc.aio.Server
    port: int
    metrics_port: int
    anomaly: AnomalyService | None  # None: anomaly.enabled is off (an LLM-only server)
    health: health_aio.HealthServicer
    metrics_server: object
    warmup_task: asyncio.Task | None
    log_flusher: asyncio.Task
    drift_task: asyncio.Task | None
    rollout_task: asyncio.Task | None
    llm: LLMRouter | None = None
    llm_warmup_task: asyncio.Task | None = None  # ends SERVING, or logged as failed: never raises
    llm_stats_task: asyncio.Task | None = None
    retriever: RetrieverService | None = None
    retriever_warmup_task: asyncio.Task | None = None
    chat_task: asyncio.Task | None = None  # sets ChatService SERVING; not awaited by wait_ready
    slo: SloTracker | None = None  # installed as the process's tracker while this gateway runs
    openai_port: int | None = None  # the OpenAI-compatible HTTP API, when served
    openai_server: Any = None
    openai_task: asyncio.Task | None = None
    health_task: asyncio.Task | None = None
    loop_lag: LoopLagProbe = field(default_factory=LoopLagProbe)  # what held this loop, and for how long
    policy: AccessPolicy | None = None  # its limits store's connections close at stop

    async def wait_ready(self, timeout: float) -> None:
        """Until every service has finished warming up (the LLM's may end NOT_SERVING: see its log)."""
        tasks = [t for t in (self.warmup_task, self.llm_warmup_task, self.retriever_warmup_task) if t is not None]
        await asyncio.wait_for(asyncio.shield(asyncio.gather(*tasks)), timeout)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking calls, let running ones finish within ``grace``, then close."""
        await self.health.enter_graceful_shutdown()
        self.loop_lag.stop()
        for task in (self.warmup_task, self.health_task, self.drift_task, self.rollout_task, self.llm_warmup_task,
                     self.llm_stats_task, self.retriever_warmup_task, self.chat_task):
            if task is not None:
                task.cancel()
        if self.openai_server is not None:
            self.openai_server.should_exit = True
        await self.server.stop(grace)
        if self.openai_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.openai_task, grace)
        if self.anomaly is not None:
            await self.anomaly.close()
        if self.llm is not None:
            await self.llm.close()
        if self.policy is not None:
            await self.policy.close()
        self.log_flusher.cancel()
        await asyncio.to_thread(ACCESS.sync)  # the writer thread has written every line
        if isinstance(ACCESS.stream, RotatingFile):
            ACCESS.stream.close()
            ACCESS.stream = None
        if self.slo is not None and slo.current() is self.slo:
            slo.install(None)
        with contextlib.suppress(Exception):
            self.metrics_server.shutdown()  # type: ignore[attr-defined]


def _slo_tracker(settings: Settings) -> SloTracker | None:
    """The SLO tracker from the objectives file and the deployments' prices, its series registered;
    None when ``slo.enabled`` is off. A bad SLO file fails the start with the file and the field."""
    if not settings.slo.enabled:
        return None
    objectives = load_slo_file(settings.slo.file)
    slo_exporter.register()
    return SloTracker(objectives, hourly_cost(settings, objectives.prices))


@dataclass(slots=True)
class _Services:
    """The servicers a gateway registers, and their full names (health and reflection list them)."""

    anomaly: AnomalyService | None = None
    llm: LLMRouter | None = None
    retriever: RetrieverService | None = None
    chat: ChatWiring | None = None
    names: list[str] = field(default_factory=list)


def _grpc_server(settings: Settings, policy: AccessPolicy) -> grpc.aio.Server:
    """grpc.aio server with our message limits and interceptors (auth inside observability, so
    refused calls are counted and logged like the rest)."""
    cfg, security = settings.gateway, settings.security
    options = [
        # Our handlers refuse bodies over max_message_bytes (RESOURCE_EXHAUSTED, logged and counted);
        # gRPC core's own limit sits above it, so only a body 4x over is refused before any code of ours.
        ("grpc.max_receive_message_length", core_receive_limit(cfg.max_message_bytes)),
        ("grpc.max_send_message_length", cfg.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    install_hash_key(keyed_hash.load_or_create(security.hash_key_file or settings.data_dir / "hash.key"))
    interceptors: list[grpc.aio.ServerInterceptor] = [ObservabilityInterceptor()]
    if policy.enabled:
        interceptors.append(AuthInterceptor(policy))
    return grpc.aio.server(interceptors=interceptors, options=options,
                           maximum_concurrent_rpcs=cfg.max_concurrent_rpcs)


def _register_services(
    server: grpc.aio.Server, settings: Settings, endpoint: AnomalyEndpoint | None, llm_endpoint: LLMEndpoint | None,
    extra_llm_endpoints: Sequence[LLMEndpoint], rag: RetrievalWorkload | None,
) -> _Services:
    """A servicer per workload given; a workload not given is not registered (UNIMPLEMENTED)."""
    limit = settings.gateway.max_message_bytes
    out = _Services()

    def add(descriptor, servicer) -> None:
        add_service(server, descriptor, servicer, limit)
        out.names.append(descriptor.full_name)

    if endpoint is not None:
        out.anomaly = AnomalyService(settings, endpoint)
        add(ANOMALY_SERVICE, out.anomaly)
    if llm_endpoint is not None:  # the default model first; llm.also_serve's after it
        out.llm = LLMRouter([LLMService(settings, e) for e in (llm_endpoint, *extra_llm_endpoints)])
        guard = LLMGuard(settings)  # one set of rails for every model's doors
        for service in out.llm.services:
            service.guard = guard
        add(LLM_SERVICE, out.llm)
    if rag is not None:
        out.retriever, out.chat = RetrieverService(rag), ChatWiring(rag, out.llm)
        add(RETRIEVER_SERVICE, out.retriever)
        if out.llm is not None:
            add(CHAT_SERVICE, ChatService(out.chat, settings))
    return out


async def _health_and_reflection(server: grpc.aio.Server, names: list[str]) -> health_aio.HealthServicer:
    """Standard health (every service NOT_SERVING until warmed up) and server reflection."""
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for service in ("", *names):
        await health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    reflection.enable_server_reflection((*names, health_name, reflection.SERVICE_NAME), server)
    return health


def _bind(server: grpc.aio.Server, settings: Settings) -> int:
    cfg = settings.gateway
    credentials = tls.grpc_credentials(settings.security.tls)
    address = f"{cfg.host}:{cfg.port}"
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC port {cfg.host}:{cfg.port}")
    return port


def _start_metrics(settings: Settings) -> tuple[Any, int]:
    """The Prometheus endpoint (TLS, and client certificates, when ``security.tls.metrics``)."""
    cfg, tls_cfg = settings.gateway, settings.security.tls
    if tls_cfg.metrics:
        return serve_metrics(cfg.host, cfg.metrics_port, str(tls_cfg.cert), str(tls_cfg.key),
                             str(tls_cfg.client_ca) if tls_cfg.client_ca else None)
    return serve_metrics(cfg.host, cfg.metrics_port)


async def start_gateway(
    settings: Settings, endpoint: AnomalyEndpoint | None, llm_endpoint: LLMEndpoint | None = None,
    rag: RetrievalWorkload | None = None,
    extra_llm_endpoints: Sequence[LLMEndpoint] = (),
) -> Gateway:
    """Start the gateway; health says NOT_SERVING until the endpoint's models are loaded.

    AnomalyService is served when ``endpoint`` is given (``anomaly.enabled``), LLMService when
    ``llm_endpoint`` is (``llm.enabled``), RetrieverService when ``rag`` is; a service not given is
    not registered (UNIMPLEMENTED). The server's overall health follows AnomalyService, or the
    default LLM where there is no AnomalyService. Steps: the gRPC server, the services, health and
    reflection, the SLO tracker and tracing, bind and start, the access log and /metrics, then the
    background tasks (warm-ups, health probes, drift, rollout, LLM stats) and the OpenAI API.
    """
    cfg, security = settings.gateway, settings.security
    policy = AccessPolicy(security)
    server = _grpc_server(settings, policy)
    sv = _register_services(server, settings, endpoint, llm_endpoint, extra_llm_endpoints, rag)
    slo_tracker = _slo_tracker(settings)
    if settings.tracing.exporter != "none":
        tracing.configure(settings.tracing.exporter, settings.tracing.otlp_endpoint, settings.tracing.service_name)
    health = await _health_and_reflection(server, sv.names)
    port = _bind(server, settings)
    await server.start()
    if security.access_log_file is not None:
        ACCESS.stream = RotatingFile(security.access_log_file, security.access_log_max_bytes,
                                     security.access_log_backups)
    slo.install(slo_tracker)
    metrics_server, metrics_port = _start_metrics(settings)
    gateway = _start_background(server, port, metrics_server, metrics_port, sv, endpoint, rag, health, cfg)
    gateway.slo, gateway.policy = slo_tracker, policy
    log_event("stackserve.gateway", "listening", grpc_port=port, metrics_port=metrics_port)
    if sv.llm is not None and cfg.openai_port is not None:
        http, sock = serve_openai(sv.llm, cfg.host, cfg.openai_port, rag, policy, tls.uvicorn_options(security.tls))
        gateway.openai_server, gateway.openai_port = http, sock.getsockname()[1]
        gateway.openai_task = asyncio.create_task(http.serve(sockets=[sock]))
        log_event("stackserve.gateway", "openai api listening", port=gateway.openai_port)
    return gateway


def _start_background(
    server: grpc.aio.Server, port: int, metrics_server: Any, metrics_port: int, sv: _Services,
    endpoint: AnomalyEndpoint | None, rag: RetrievalWorkload | None, health: health_aio.HealthServicer,
    cfg: GatewayConfig,
) -> Gateway:
    """The gateway's background tasks: warm-ups that flip health to SERVING, the health monitor's
    probes, the drift loop, the rollout controller, the access-log flusher, the LLM stats loop."""
    anomaly, llm, chat = sv.anomaly, sv.llm, sv.chat
    monitor = HealthMonitor(health, cfg.health_probe_interval_s, cfg.health_probe_timeout_s)
    warmup = drift = rollout = None
    if anomaly is not None and endpoint is not None:
        monitor.watch(ANOMALY_SERVICE.full_name, endpoint.models, also=("",))
        warmup = asyncio.create_task(warm_up_anomaly(anomaly, endpoint, health, cfg.warmup_timeout_s, monitor))
        drift = asyncio.create_task(anomaly.scoring.drift.run())
        rollout = asyncio.create_task(anomaly.scoring.run_rollout())
    if llm is not None:
        monitor.watch(LLM_SERVICE.full_name, llm.default.endpoint.health, also=("",) if anomaly is None else ())
        monitor.require(CHAT_SERVICE.full_name, LLM_SERVICE.full_name)
    flusher = asyncio.create_task(_flush_access_log())
    llm_warmup = llm_stats = None
    if llm is not None:
        llm_warmup = asyncio.create_task(warm_up_llms(llm, health, cfg.warmup_timeout_s, monitor,
                                                       overall=anomaly is None))
        llm_stats = asyncio.create_task(llm.run_stats_loop())
    rag_warmup = chat_task = None
    if rag is not None and chat is not None:
        rag_warmup = asyncio.create_task(warm_up_retriever(rag, chat, health))
        if llm is not None:
            chat_task = asyncio.create_task(chat_serving(chat, rag_warmup, health, monitor))
    gateway = Gateway(
        server, port, metrics_port, anomaly, health, metrics_server, warmup, flusher, drift, rollout,
        llm, llm_warmup, llm_stats, sv.retriever, rag_warmup, chat_task,
    )
    gateway.health_task = asyncio.create_task(monitor.run())
    gateway.loop_lag.start()
    return gateway


def core_receive_limit(max_message_bytes: int) -> int:
    """gRPC core's receive limit: a backstop far enough above ours that our handlers see (and
    count) nearly every oversize body, low enough that core never buffers an unbounded one."""
    return min(2**31 - 1, max(4 * max_message_bytes, max_message_bytes + 2**20))


async def _flush_access_log() -> None:
    """Write buffered access-log lines even when traffic stops."""
    while True:
        await asyncio.sleep(ACCESS.interval_s)
        ACCESS.flush()
