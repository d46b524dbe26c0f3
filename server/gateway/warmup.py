"""Warming the gateway's services up: each flips its health to SERVING once what it needs is loaded
(the anomaly models, every LLM and its rails, the retriever, the chat pipeline), and never before;
a part that fails to load leaves only its own service NOT_SERVING."""

from __future__ import annotations

import asyncio
import logging

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from server.anomaly.scorer import AnomalyScorer, load_scorer
from server.config import Settings
from server.gateway.anomaly_endpoint import AnomalyEndpoint, LocalAnomalyEndpoint, RayAnomalyEndpoint
from server.gateway.anomaly_service import AnomalyService
from server.gateway.health_monitor import HealthMonitor
from server.gateway.llm_router import LLMRouter
from server.gateway.llm_service import LLMService
from server.gen.stackserve.v1 import anomaly_pb2, chat_pb2, llm_pb2, retriever_pb2
from server.guardrails.input_rails import InputRails
from server.observability.logs import log_event
from server.rag.chat import ChatPipeline
from server.rag.retrieval_workload import RetrievalWorkload

log = logging.getLogger("stackserve.gateway")
ANOMALY_SERVICE = anomaly_pb2.DESCRIPTOR.services_by_name["AnomalyService"]
LLM_SERVICE = llm_pb2.DESCRIPTOR.services_by_name["LLMService"]
RETRIEVER_SERVICE = retriever_pb2.DESCRIPTOR.services_by_name["RetrieverService"]
CHAT_SERVICE = chat_pb2.DESCRIPTOR.services_by_name["ChatService"]


async def warm_up_anomaly(anomaly: AnomalyService, endpoint: AnomalyEndpoint, health: health_aio.HealthServicer,
                          timeout: float, monitor: HealthMonitor) -> None:
    """Poll the endpoint until its models are loaded, then report SERVING (with the gateway's own
    copy of the models loaded meanwhile, when small requests are scored in the gateway)."""
    local = asyncio.create_task(local_scorer(anomaly.settings, endpoint))
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


async def local_scorer(settings: Settings, endpoint: AnomalyEndpoint) -> AnomalyScorer | None:
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


async def warm_up_llms(router: LLMRouter, health: health_aio.HealthServicer, timeout: float,
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
    await asyncio.gather(*(warm_up_llm(s, health if i == 0 else None, timeout, monitor, overall and i == 0)
                           for i, s in enumerate(router.services)))  # fmt: skip


async def warm_up_llm(llm: LLMService, health: health_aio.HealthServicer | None, timeout: float,
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


class ChatWiring:
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


async def warm_up_retriever(engine: RetrievalWorkload, chat: ChatWiring, health: health_aio.HealthServicer) -> None:
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


async def chat_serving(chat: ChatWiring, retriever_warmup: asyncio.Task, health: health_aio.HealthServicer,
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
