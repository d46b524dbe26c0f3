"""Build and run the grpc.aio gateway: services, health, reflection, limits, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from server.anomaly.scorer import AnomalyScorer, load_scorer
from server.config import Settings
from server.gateway.anomaly_endpoint import AnomalyEndpoint, LocalAnomalyEndpoint, RayAnomalyEndpoint
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
from server.gen.stackserve.v1 import anomaly_pb2, chat_pb2, llm_pb2, retriever_pb2
from server.guardrails.input_rails import InputRails
from server.guardrails.llm_doors import LLMGuard
from server.observability import tracing
from server.observability.logs import ACCESS, RotatingFile, install_hash_key, log_event
from server.observability.metrics import serve_metrics
from server.protocol.registration import add_service
from server.rag.chat import ChatPipeline
from server.rag.retrieval_workload import RetrievalWorkload
from server.security import keyed_hash, tls
from server.security.access_policy import AccessPolicy
from server.slo import exporter as slo_exporter
from server.slo import tracker as slo
from server.slo.cost import hourly_cost
from server.slo.objectives import load_slo_file
from server.slo.tracker import SloTracker

log = logging.getLogger("stackserve.gateway")
ANOMALY_SERVICE = anomaly_pb2.DESCRIPTOR.services_by_name["AnomalyService"]
LLM_SERVICE = llm_pb2.DESCRIPTOR.services_by_name["LLMService"]
RETRIEVER_SERVICE = retriever_pb2.DESCRIPTOR.services_by_name["RetrieverService"]
CHAT_SERVICE = chat_pb2.DESCRIPTOR.services_by_name["ChatService"]


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

    async def wait_ready(self, timeout: float) -> None:
        """Until every service has finished warming up (the LLM's may end NOT_SERVING: see its log)."""
        tasks = [t for t in (self.warmup_task, self.llm_warmup_task, self.retriever_warmup_task) if t is not None]
        await asyncio.wait_for(asyncio.shield(asyncio.gather(*tasks)), timeout)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking calls, let running ones finish within ``grace``, then close."""
        await self.health.enter_graceful_shutdown()
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
        self.log_flusher.cancel()
        ACCESS.flush()
        if isinstance(ACCESS.stream, RotatingFile):
            ACCESS.stream.close()
            ACCESS.stream = None
        if self.slo is not None and slo.current() is self.slo:
            slo.install(None)
        with contextlib.suppress(Exception):
            self.metrics_server.shutdown()  # type: ignore[attr-defined]


async def _warm_up(anomaly: AnomalyService, endpoint: AnomalyEndpoint, health: health_aio.HealthServicer,
                   timeout: float, monitor: HealthMonitor) -> None:
    """Poll the endpoint until its models are loaded, then report SERVING (with the gateway's own
    copy of the models loaded meanwhile, when small requests are scored in the gateway)."""
    local = asyncio.create_task(_local_scorer(anomaly.settings, endpoint))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.1
    while True:
        try:
            infos = await endpoint.models()
            break
        except Exception as exc:
            if loop.time() > deadline:
                log.error("endpoint did not become ready in %.0fs: %s", timeout, exc)
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    anomaly.load_catalog(infos)
    scorer = await local
    if scorer is not None:
        anomaly.scoring.attach_local(scorer, infos)
    name = ANOMALY_SERVICE.full_name
    await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    monitor.started(name)
    log_event("stackserve.gateway", "ready", models=[i["name"] for i in infos])


async def _local_scorer(settings: Settings, endpoint: AnomalyEndpoint) -> AnomalyScorer | None:
    """The scorer for in-gateway scoring: the in-process endpoint's own, or for a Ray endpoint the
    same models loaded here (the same loader as the replicas'). None when turned off, for any
    other endpoint (a wrapper in a test holds calls on purpose), or when loading failed (logged:
    every request then goes to the endpoint)."""
    if settings.anomaly.in_gateway_max_events == 0:
        return None
    if isinstance(endpoint, LocalAnomalyEndpoint):
        return endpoint.scorer
    if not isinstance(endpoint, RayAnomalyEndpoint):
        return None
    try:
        return await asyncio.to_thread(load_scorer, settings)
    except Exception as exc:
        log.error("in-gateway scoring is off: the models did not load here: %s", exc)
        return None


async def _warm_up_llms(router: LLMRouter, health: health_aio.HealthServicer, timeout: float,
                        monitor: HealthMonitor, overall: bool = False) -> None:
    """Every model's warm-up at once; LLMService is SERVING once the default model is, and once the
    LLM doors' guardrails are loaded when a policy needs them (fail closed: no rails, no service)."""
    guard = router.default.guard
    if guard is not None:
        try:
            await guard.start()
        except Exception as exc:
            log.error("the LLM guardrails failed to load; LLMService stays NOT_SERVING: %s", exc)
            return
    await asyncio.gather(*(_warm_up_llm(s, health if i == 0 else None, timeout, monitor, overall and i == 0)
                           for i, s in enumerate(router.services)))  # fmt: skip


async def _warm_up_llm(llm: LLMService, health: health_aio.HealthServicer | None, timeout: float,
                       monitor: HealthMonitor, overall: bool = False) -> None:
    """Poll the LLM endpoint's ``info()`` until it answers, then report LLMService SERVING (when
    ``health`` is given: the default model; the others just start taking requests).

    Never raises: an LLM that fails to load leaves LLMService NOT_SERVING (its calls get
    UNAVAILABLE) while the other services keep serving. An endpoint with a ``failed`` exception
    set (the deployment could not start) ends the wait at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.1
    while True:
        failed = getattr(llm.endpoint, "failed", None)
        if failed is not None:
            log.error("LLM deployment failed to start; LLMService stays NOT_SERVING: %s", failed)
            return
        try:
            info = await llm.endpoint.info()
            break
        except Exception as exc:
            if loop.time() > deadline:
                log.error("LLM endpoint did not become ready in %.0fs; LLMService stays NOT_SERVING: %s",
                          timeout, exc)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    llm.load_info(info)
    if health is not None:
        await health.set(LLM_SERVICE.full_name, health_pb2.HealthCheckResponse.SERVING)
        if overall:  # no AnomalyService: the server is up when its default model is
            await health.set("", health_pb2.HealthCheckResponse.SERVING)
        monitor.started(LLM_SERVICE.full_name)
    log_event("stackserve.gateway", "llm ready", model=info.model, backend=info.backend,
              max_model_len=info.max_model_len)


class _ChatWiring:
    """The chat pipeline once its parts are up: retrieval (embedder + store), the input rails
    (exemplars embedded once), and the LLM (its info loaded)."""

    def __init__(self, rag: RetrievalWorkload, llm: LLMRouter | None) -> None:
        self.rag = rag
        self.llm = llm
        self.pipeline: ChatPipeline | None = None

    def __call__(self) -> ChatPipeline | None:
        if self.pipeline is not None and self.llm is not None and self.llm.ready:
            return self.pipeline
        return None

    async def start(self) -> None:
        if self.llm is None or self.rag.retriever is None:
            return
        embed = self.rag.retriever.embedder.encode
        rails = await asyncio.to_thread(InputRails, embed)
        llm = self.llm
        self.pipeline = ChatPipeline(self.rag, rails, llm.endpoint.generate,
                                     lambda: llm.info.max_model_len if llm.info is not None else 512)


async def _warm_up_retriever(engine: RetrievalWorkload, chat: _ChatWiring, health: health_aio.HealthServicer) -> None:
    """Load the embedder and the store, then report RetrieverService SERVING (logged on failure);
    then the chat rails, and ChatService SERVING once the LLM is too."""
    try:
        await engine.start()
    except Exception as exc:
        log.error("the retriever failed to start; RetrieverService stays NOT_SERVING: %s", exc)
        return
    await health.set(RETRIEVER_SERVICE.full_name, health_pb2.HealthCheckResponse.SERVING)
    log_event("stackserve.gateway", "retriever ready", chunks=engine.retriever.size if engine.retriever else 0)
    if chat.llm is None:
        return
    try:
        await chat.start()
    except Exception as exc:
        log.error("the chat guardrails failed to load; ChatService stays NOT_SERVING: %s", exc)


async def _chat_serving(chat: _ChatWiring, retriever_warmup: asyncio.Task, health: health_aio.HealthServicer,
                        monitor: HealthMonitor) -> None:
    """ChatService SERVING once retrieval, its rails and the LLM are all up (not part of
    ``wait_ready``: an LLM that never loads leaves chat NOT_SERVING, the rest serving)."""
    await asyncio.shield(retriever_warmup)
    while chat() is None:
        if chat.pipeline is None or getattr(chat.llm.endpoint if chat.llm else None, "failed", None) is not None:
            return
        await asyncio.sleep(0.5)
    await health.set(CHAT_SERVICE.full_name, health_pb2.HealthCheckResponse.SERVING)
    monitor.started(CHAT_SERVICE.full_name)


def _slo_tracker(settings: Settings) -> SloTracker | None:
    """The SLO tracker from the objectives file and the deployments' prices, its series registered;
    None when ``slo.enabled`` is off. A bad SLO file fails the start with the file and the field."""
    if not settings.slo.enabled:
        return None
    objectives = load_slo_file(settings.slo.file)
    slo_exporter.register()
    return SloTracker(objectives, hourly_cost(settings, objectives.prices))


async def start_gateway(
    settings: Settings, endpoint: AnomalyEndpoint | None, llm_endpoint: LLMEndpoint | None = None,
    rag: RetrievalWorkload | None = None,
    extra_llm_endpoints: Sequence[LLMEndpoint] = (),
) -> Gateway:
    """Start the gateway; health says NOT_SERVING until the endpoint's models are loaded.

    AnomalyService is served when ``endpoint`` is given (``anomaly.enabled``), LLMService when
    ``llm_endpoint`` is (``llm.enabled``), RetrieverService when ``rag`` is; a service not given is
    not registered (UNIMPLEMENTED). The server's overall health follows AnomalyService, or the
    default LLM where there is no AnomalyService.
    """
    cfg = settings.gateway
    options = [
        # Our handlers refuse bodies over max_message_bytes (RESOURCE_EXHAUSTED, logged and counted);
        # gRPC core's own limit sits above it, so only a body 4x over is refused before any code of ours.
        ("grpc.max_receive_message_length", core_receive_limit(cfg.max_message_bytes)),
        ("grpc.max_send_message_length", cfg.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    security = settings.security
    policy = AccessPolicy(security)
    install_hash_key(keyed_hash.load_or_create(security.hash_key_file or settings.data_dir / "hash.key"))
    interceptors: list[grpc.aio.ServerInterceptor] = [ObservabilityInterceptor()]
    if policy.enabled:  # inside observability: refused calls are counted and logged like the rest
        interceptors.append(AuthInterceptor(policy))
    server = grpc.aio.server(
        interceptors=interceptors,
        options=options,
        maximum_concurrent_rpcs=cfg.max_concurrent_rpcs,
    )
    anomaly = AnomalyService(settings, endpoint) if endpoint is not None else None
    services: list[str] = []
    if anomaly is not None:
        add_service(server, ANOMALY_SERVICE, anomaly, cfg.max_message_bytes)
        services.append(ANOMALY_SERVICE.full_name)
    llm = None
    if llm_endpoint is not None:  # the default model first; llm.also_serve's after it
        llm = LLMRouter([LLMService(settings, e) for e in (llm_endpoint, *extra_llm_endpoints)])
        guard = LLMGuard(settings)  # one set of rails for every model's doors
        for service in llm.services:
            service.guard = guard
    if llm is not None:
        add_service(server, LLM_SERVICE, llm, cfg.max_message_bytes)
        services.append(LLM_SERVICE.full_name)
    retriever = RetrieverService(rag) if rag is not None else None
    chat = _ChatWiring(rag, llm) if rag is not None else None
    if retriever is not None:
        add_service(server, RETRIEVER_SERVICE, retriever, cfg.max_message_bytes)
        services.append(RETRIEVER_SERVICE.full_name)
    if chat is not None and llm is not None:
        add_service(server, CHAT_SERVICE, ChatService(chat, settings), cfg.max_message_bytes)
        services.append(CHAT_SERVICE.full_name)
    slo_tracker = _slo_tracker(settings)
    if settings.tracing.exporter != "none":
        tracing.configure(settings.tracing.exporter, settings.tracing.otlp_endpoint, settings.tracing.service_name)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for service in ("", *services):
        await health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    reflection.enable_server_reflection((*services, health_name, reflection.SERVICE_NAME), server)
    credentials = tls.grpc_credentials(security.tls)
    address = f"{cfg.host}:{cfg.port}"
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC port {cfg.host}:{cfg.port}")
    await server.start()
    if security.access_log_file is not None:
        ACCESS.stream = RotatingFile(security.access_log_file, security.access_log_max_bytes,
                                     security.access_log_backups)
    slo.install(slo_tracker)
    tls_cfg = security.tls
    metrics_server, metrics_port = (
        serve_metrics(cfg.host, cfg.metrics_port, str(tls_cfg.cert), str(tls_cfg.key),
                      str(tls_cfg.client_ca) if tls_cfg.client_ca else None)
        if tls_cfg.metrics else serve_metrics(cfg.host, cfg.metrics_port)
    )
    monitor = HealthMonitor(health, cfg.health_probe_interval_s, cfg.health_probe_timeout_s)
    warmup = drift = rollout = None
    if anomaly is not None and endpoint is not None:
        monitor.watch(ANOMALY_SERVICE.full_name, endpoint.models, also=("",))
        warmup = asyncio.create_task(_warm_up(anomaly, endpoint, health, cfg.warmup_timeout_s, monitor))
        drift = asyncio.create_task(anomaly.scoring.drift.run())
        rollout = asyncio.create_task(anomaly.scoring.run_rollout())
    if llm is not None:
        monitor.watch(LLM_SERVICE.full_name, llm.default.endpoint.info, also=("",) if anomaly is None else ())
        monitor.require(CHAT_SERVICE.full_name, LLM_SERVICE.full_name)
    flusher = asyncio.create_task(_flush_access_log())
    llm_warmup = llm_stats = None
    if llm is not None:
        llm_warmup = asyncio.create_task(_warm_up_llms(llm, health, cfg.warmup_timeout_s, monitor,
                                                       overall=anomaly is None))
        llm_stats = asyncio.create_task(llm.run_stats_loop())
    rag_warmup = chat_task = None
    if rag is not None and chat is not None:
        rag_warmup = asyncio.create_task(_warm_up_retriever(rag, chat, health))
        if llm is not None:
            chat_task = asyncio.create_task(_chat_serving(chat, rag_warmup, health, monitor))
    log_event("stackserve.gateway", "listening", grpc_port=port, metrics_port=metrics_port)
    gateway = Gateway(
        server, port, metrics_port, anomaly, health, metrics_server, warmup, flusher, drift, rollout,
        llm, llm_warmup, llm_stats, retriever, rag_warmup, chat_task,
    )
    gateway.slo = slo_tracker
    gateway.health_task = asyncio.create_task(monitor.run())
    if llm is not None and cfg.openai_port is not None:
        http, sock = serve_openai(llm, cfg.host, cfg.openai_port, rag, policy, tls.uvicorn_options(security.tls))
        gateway.openai_server, gateway.openai_port = http, sock.getsockname()[1]
        gateway.openai_task = asyncio.create_task(http.serve(sockets=[sock]))
        log_event("stackserve.gateway", "openai api listening", port=gateway.openai_port)
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
