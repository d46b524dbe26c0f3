"""What each workload's reserved resources cost per hour, from the prices in the SLO file.

Charged for what Ray reserves (``num_cpus`` x replicas, and a GPU for a GPU backend), busy or idle,
as a cloud bill is: cost per 1K output tokens then falls as throughput rises, which is the point of
tracking it. The chat workload's own resources are the Embedder replicas (its LLM time is billed to
the LLM workload, whose tokens it consumes).
"""

from __future__ import annotations

from server.config import Settings
from server.slo.objectives import Prices

GPU_BACKENDS = frozenset({"triton", "tensorrt"})


def hourly_cost(settings: Settings, prices: Prices) -> dict[str, float]:
    a = settings.anomaly
    replicas = a.max_replicas if a.num_replicas == "auto" else int(a.num_replicas)  # autoscaling: the ceiling
    cost = {"anomaly": a.num_cpus * replicas * prices.cpu_core_hour}
    llm = settings.llm
    llm_cost = llm.num_cpus * prices.cpu_core_hour
    if llm.backend in GPU_BACKENDS:
        gpu = settings.slo.gpu_type
        if gpu not in prices.gpu_hour:
            raise ValueError(f"slo prices have no gpu_hour for {gpu!r} (slo.gpu_type); "
                             f"known: {sorted(prices.gpu_hour)}")
        llm_cost += prices.gpu_hour[gpu]
    cost["llm"] = llm_cost if llm.enabled else 0.0
    e = settings.rag.embedder
    cost["chat"] = e.num_cpus * e.replicas * prices.cpu_core_hour if settings.rag.enabled else 0.0
    return cost
