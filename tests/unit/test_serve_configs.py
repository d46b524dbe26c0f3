"""The Serve config files validate offline, as `serve deploy` would read them: Ray's own schema, an
import path that builds the application, deployment names that exist in it, and an autoscaling
policy and resource request for every deployment (no cluster needed)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from server.serve_apps import EMBEDDER_APP, LLM_APP

CONFIGS = sorted((Path(__file__).parents[2] / "deployments" / "configs").glob("*.yaml"))
SERVE_CONFIGS = [p for p in CONFIGS if "applications" in (yaml.safe_load(p.read_text()) or {})]


def test_every_workload_has_a_config():
    names = {app["name"] for p in SERVE_CONFIGS for app in yaml.safe_load(p.read_text())["applications"]}
    assert {"anomaly", LLM_APP, EMBEDDER_APP} <= names  # the names the gateway looks its apps up by


@pytest.mark.parametrize("path", SERVE_CONFIGS, ids=lambda p: p.name)
def test_serve_config_validates_and_builds(path):
    schema = ServeDeploySchema.model_validate(yaml.safe_load(path.read_text()))
    for app in schema.applications:
        module, _, attr = app.import_path.partition(":")
        built = getattr(importlib.import_module(module), attr)(app.args)  # an Application, not deployed
        deployed = {d.name for d in _deployments(built)}
        for d in app.deployments:
            assert d.name in deployed, f"{path.name}: {d.name} is not a deployment of {app.import_path}"
            auto = d.autoscaling_config
            assert auto is not None, f"{path.name}: {d.name} has no autoscaling_config"
            auto = auto if isinstance(auto, dict) else auto.model_dump()
            assert 1 <= auto["min_replicas"] <= auto["max_replicas"]
            assert auto.get("target_ongoing_requests", 0) > 0
            options = d.ray_actor_options
            options = options if isinstance(options, dict) else options.model_dump()
            assert (options.get("num_cpus") or 0) > 0, f"{path.name}: {d.name} requests no CPU"


def _deployments(app):
    """Every deployment bound into an Application (the ingress and what it binds)."""
    node = app._bound_deployment
    seen, stack = [], [node]
    while stack:
        d = stack.pop()
        seen.append(d)
        stack.extend(a._bound_deployment for a in (*d.init_args, *d.init_kwargs.values())
                     if hasattr(a, "_bound_deployment"))
    return seen
