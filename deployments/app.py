"""Build the Serve application graph from the config tree."""

from __future__ import annotations

from ray.serve import Application

from deployments.anomaly_scorer import AnomalyScorerDeployment
from server.config import Settings

ANOMALY_APP = "anomaly"


def build_anomaly_app(settings: Settings) -> Application:
    cfg = settings.anomaly
    options: dict = {
        "ray_actor_options": {
            "num_cpus": cfg.num_cpus,
            # Our replica code is async and never blocks; running it on the replica's
            # own loop (not a separate user-code thread) saves two thread hand-offs per call.
            "runtime_env": {"env_vars": {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}},
        },
        "max_ongoing_requests": cfg.max_ongoing_requests,
        "user_config": cfg.batching.model_dump(),
    }
    if cfg.num_replicas == "auto":
        options["autoscaling_config"] = {
            "min_replicas": cfg.min_replicas,
            "max_replicas": cfg.max_replicas,
            "target_ongoing_requests": max(1, cfg.max_ongoing_requests // 4),
        }
    else:
        options["num_replicas"] = cfg.num_replicas
    return AnomalyScorerDeployment.options(**options).bind(settings.model_dump_json())


def app_builder(args: dict) -> Application:
    """Entry for ``serve run deployments.app:app_builder`` / serve deploy configs."""
    from server.config import load_settings

    return build_anomaly_app(load_settings(args.get("config")))
