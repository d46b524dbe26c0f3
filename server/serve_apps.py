"""Ray Serve applications: the anomaly, LLM and Embedder apps built from their import paths and
the settings, deployed onto an attached cluster, and deleted again (only the ones this process
deployed, on a cluster it joined)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
from typing import Any

from server.config import Settings
from server.ray_cluster import RayAttachment

log = logging.getLogger("stackserve.serve_apps")


REPLICA_LOGGING = {"encoding": "JSON", "enable_access_log": False, "log_level": "WARNING"}

ANOMALY_APP = "anomaly"  # Serve application names: the gateway finds a cluster's deployments by them
LLM_APP = "llm"
EMBEDDER_APP = "embedder"


def build_app(import_path: str, settings: Settings) -> Any:
    """The Serve application ``module:function`` builds from ``settings``.

    By import path, as ``serve deploy`` configs name applications: the server decides when and
    where an application runs, the deployments package (a layer above) decides what it is, and
    imports point one way (deployments import server, never the reverse).
    """
    module_name, _, attr = import_path.partition(":")
    try:
        builder = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"ray application {import_path!r} cannot be imported: {exc}") from exc
    return builder(settings)


def _running_apps() -> set[str]:
    from ray import serve

    try:
        return set(serve.status().applications)
    except Exception:  # Serve not started on this cluster yet
        return set()


def start_ray_app(settings: Settings, attachment: RayAttachment) -> Any:
    """Serve's handle to the anomaly application: the cluster's own deployment when it has one
    (used as deployed: its replicas, autoscaling and config are not touched), else one we deploy."""
    # Run the DeploymentHandle's router on the caller's event loop instead of a
    # separate thread: each call then skips two cross-thread hand-offs. Set after
    # ray.init so Ray's own processes (its gRPC proxy, the benchmark baseline) keep
    # their defaults; read when ray.serve is first imported, just below.
    os.environ.setdefault("RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP", "0")
    from ray import serve

    if not attachment.owns_cluster and ANOMALY_APP in _running_apps():
        log.warning("using the %r application already deployed on the cluster as it is", ANOMALY_APP)
        if settings.ray.grpc_proxy_port:
            log.warning("--ray-grpc-port ignored: Serve's proxies belong to the cluster we joined")
        return serve.get_app_handle(ANOMALY_APP)
    if attachment.owns_cluster:
        if settings.ray.grpc_proxy_port:
            serve.start(
                proxy_location="HeadOnly",
                http_options={"host": settings.gateway.host, "port": settings.ray.http_proxy_port},
                grpc_options={
                    "port": settings.ray.grpc_proxy_port,
                    "grpc_servicer_functions": [
                        "server.gen.stackserve.v1.anomaly_pb2_grpc.add_AnomalyServiceServicer_to_server"
                    ],
                },
            )
        else:
            serve.start(proxy_location="Disabled")
    else:
        serve.start(proxy_location="Disabled")  # joins Serve where it runs (its settings kept), else starts it
    attachment.owned_apps.append(ANOMALY_APP)
    # Ray's proxies only expose applications that have a route prefix; our gateway
    # uses the handle and needs none. Per-call replica access logs are off: the
    # gateway writes one structured line per request already.
    return serve.run(
        build_app(settings.ray.anomaly_app, settings),
        name=ANOMALY_APP,
        route_prefix=f"/{ANOMALY_APP}" if settings.ray.grpc_proxy_port and attachment.owns_cluster else None,
        logging_config=REPLICA_LOGGING,
    )


def start_llm_app(settings: Settings, attachment: RayAttachment, model: str | None = None) -> Any:
    """The LLM application's handle: the cluster's own when deployed there, else one we deploy
    (Ray and Serve already started). ``model``: an ``llm.also_serve`` model, in its own application."""
    if model is None:
        return _start_app(LLM_APP, settings.ray.llm_app, settings, attachment)
    return _start_app(f"{LLM_APP}-{model}", settings.ray.llm_app, settings_for_model(settings, model), attachment)


def settings_for_model(settings: Settings, model: str) -> Settings:
    """The settings with ``llm`` switched to another packaged model (an ``also_serve`` engine)."""
    return settings.model_copy(update={"llm": settings.llm.for_model(model)})


def start_embedder_app(settings: Settings, attachment: RayAttachment) -> Any:
    """The Embedder application's handle (retrieval and chat embed through it)."""
    return _start_app(EMBEDDER_APP, settings.ray.embedder_app, settings, attachment)


def _start_app(name: str, import_path: str, settings: Settings, attachment: RayAttachment) -> Any:
    from ray import serve

    if not attachment.owns_cluster and name in _running_apps():
        log.warning("using the %r application already deployed on the cluster as it is", name)
        return serve.get_app_handle(name)
    attachment.owned_apps.append(name)
    try:
        return serve.run(
            build_app(import_path, settings),
            name=name,
            route_prefix=None,
            logging_config=REPLICA_LOGGING,
        )
    except Exception:
        # a failed deployment would keep restarting replicas (each loading its model): remove it
        try:
            serve.delete(name)
            attachment.owned_apps.remove(name)
        except Exception as exc:
            log.warning("could not delete the failed %r application: %s", name, exc)
        raise


async def stop_ray_app(attachment: RayAttachment) -> None:
    """Undo only what this process did: on our own local instance, shut Serve and Ray down; on a
    cluster we joined, delete the applications we deployed there and disconnect."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        if attachment.head is not None:
            await asyncio.to_thread(attachment.head.stop)
        return
    try:
        if attachment.owns_cluster:
            await serve.shutdown_async()
        else:
            for name in attachment.owned_apps:
                try:
                    await asyncio.to_thread(serve.delete, name)
                except Exception as exc:
                    log.warning("could not delete the %r application we deployed: %s", name, exc)
    finally:
        ray.shutdown()  # on a joined cluster this only disconnects this driver
        if attachment.head is not None:
            await asyncio.to_thread(attachment.head.stop)
