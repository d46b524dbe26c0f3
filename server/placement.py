"""Where each model runs: in the gateway's process or in Ray Serve replicas (``llm.placement``,
``rag.embedder.placement``), whether a configuration needs Ray at all, and the in-process
endpoints used when a model runs beside the gateway (and by tests without Ray)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.config import Settings
from server.gateway.anomaly_endpoint import LocalAnomalyEndpoint
from server.gateway.embedder_endpoint import RayEmbedder
from server.gateway.llm_endpoint import LocalLLMEndpoint
from server.ray_cluster import RayAttachment

if TYPE_CHECKING:  # both load torch: only the configurations that embed here pay for it
    from server.rag.embedder import Embedder
    from server.rag.retrieval_workload import RetrievalWorkload


def local_anomaly_endpoint(settings: Settings) -> LocalAnomalyEndpoint:
    """Score in this process (no Ray): for tests and machines without Ray."""
    from server.anomaly.scorer import load_scorer

    return LocalAnomalyEndpoint(load_scorer(settings))


def in_gateway(placement: str, attachment: RayAttachment) -> bool:
    """Whether a model runs in the gateway's process (``llm.placement``, ``rag.embedder.placement``;
    auto: on the one machine whose Ray instance this server started, where a replica would share the
    same cores anyway and every call, or every streamed token, would pay a crossing between processes)."""
    return placement == "gateway" or (placement == "auto" and attachment.owns_cluster)


def llm_in_gateway(settings: Settings, attachment: RayAttachment) -> bool:
    return in_gateway(settings.llm.placement, attachment)


def local_embedder(settings: Settings) -> Embedder:
    """The query/chunk embedder in this process, as RetrievalWorkload loads it without Ray."""
    from server.rag.embedder import Embedder

    return Embedder(None, 8192, settings.rag.embedder.precision)


def local_llm_endpoint(settings: Settings, model: str | None = None) -> LocalLLMEndpoint:
    """An LLM engine in this process (no Ray); ``model``: an ``llm.also_serve`` model instead."""
    from server.llm.engine import LLMEngine

    cfg = settings.llm if model is None else settings.llm.for_model(model)
    return LocalLLMEndpoint(LLMEngine(cfg).start(), cfg.model_name)


def retrieval_workload(settings: Settings, embedder: RayEmbedder | None = None) -> RetrievalWorkload | None:
    """Search runs in the gateway process (the index is in memory, or in PostgreSQL); embedding runs
    here too without Ray, or in the Embedder deployment's replicas (``embedder``) on Ray."""
    if not settings.rag.enabled:
        return None
    from server.rag.retrieval_workload import RetrievalWorkload

    return RetrievalWorkload(settings, embedder)


def needs_ray(settings: Settings) -> bool:
    """Whether serving ``settings`` needs Ray: the anomaly models run in Serve replicas, and a model
    placed on Ray (``placement: ray``) does too; an LLM-only or LLM + retrieval server with models in
    its own process needs none (it starts in seconds and holds no Ray processes)."""
    return (settings.anomaly.enabled or (settings.llm.enabled and settings.llm.placement == "ray")
            or (settings.rag.enabled and settings.rag.embedder.placement == "ray"))
