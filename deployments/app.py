"""Build the Serve applications from the config tree.

One application per workload: ``anomaly`` (AnomalyScorer), ``llm`` (LLMEngine) when
``llm.enabled``, and ``embedder`` (Embedder, for retrieval and chat) when ``rag.enabled``.
Separate applications rather than one graph because the gateway holds a handle to each deployment
directly (no ingress hop), and each can be redeployed on its own: replacing the LLM (minutes of
model load) must not restart the anomaly scorer.
"""

from __future__ import annotations

from ray.serve import Application

from deployments.anomaly_scorer import AnomalyScorerDeployment
from deployments.embedder import EmbedderDeployment
from deployments.llm_engine import LLMEngineDeployment
from server.config import Settings


def build_anomaly_app(settings: Settings) -> Application:
    cfg = settings.anomaly
    options: dict = {
        "ray_actor_options": {
            "num_cpus": cfg.num_cpus,
            # The replica's code only queues calls (the batch is scored in the replica's own scoring
            # thread): on the replica's loop, not a user-code thread, it saves two hand-offs per call.
            "runtime_env": {"env_vars": {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}},
        },
        "max_ongoing_requests": cfg.max_ongoing_requests,
        "user_config": cfg.batching.model_dump(),
    }
    if cfg.num_replicas == "auto":
        options["autoscaling_config"] = {
            "min_replicas": cfg.min_replicas,
            "max_replicas": cfg.max_replicas,
            "target_ongoing_requests": cfg.target_ongoing_requests,
        }
    else:
        options["num_replicas"] = cfg.num_replicas
    return AnomalyScorerDeployment.options(**options).bind(settings.model_dump_json())


def build_llm_app(settings: Settings) -> Application:
    """One LLMEngine replica: the engine batches internally (continuous batching), and its
    compute threads (``llm.num_threads``) want the cores; ``llm.num_cpus`` is what Ray reserves."""
    cfg = settings.llm
    return LLMEngineDeployment.options(
        num_replicas=1,
        ray_actor_options={
            "num_cpus": cfg.num_cpus,
            # the engine computes in its own thread; the replica's code only moves tokens, so it
            # runs on the replica's loop (no user-code thread hand-off per streamed piece)
            "runtime_env": {"env_vars": {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}},
        },
        max_ongoing_requests=cfg.max_ongoing_requests,
    ).bind(settings.model_dump_json())


def build_embedder_app(settings: Settings) -> Application:
    """``rag.embedder.replicas`` Embedder replicas, each batching the calls it receives."""
    cfg = settings.rag.embedder
    return EmbedderDeployment.options(
        num_replicas=cfg.replicas,
        ray_actor_options={
            "num_cpus": cfg.num_cpus,
            # the forward pass runs in a worker thread; the replica's code only queues calls
            "runtime_env": {"env_vars": {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}},
        },
        max_ongoing_requests=cfg.max_ongoing_requests,
    ).bind(settings.model_dump_json())


def _settings(args: dict) -> Settings:
    """The stackserve config a Serve config's ``args.config`` names (null: defaults + env)."""
    from server.config import load_settings

    return load_settings(args.get("config"))


def app_builder(args: dict) -> Application:
    """Entry for ``serve run deployments.app:app_builder`` / serve deploy configs (the anomaly app)."""
    return build_anomaly_app(_settings(args))


def llm_app_builder(args: dict) -> Application:
    """The LLM app for ``serve deploy deployments/configs/llm.yaml``."""
    return build_llm_app(_settings(args))


def embedder_app_builder(args: dict) -> Application:
    """The retrieval embedder app for ``serve deploy deployments/configs/retrieval.yaml``."""
    return build_embedder_app(_settings(args))

