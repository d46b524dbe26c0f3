"""Start and stop the whole server: Ray, the Serve app, the gateway.

The gateway starts first and reports NOT_SERVING while Ray and the replicas come
up, so health checks and clients see "warming up" (UNAVAILABLE) rather than a
refused connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from server.config import Settings
from server.gateway.anomaly_backend import LocalAnomalyBackend, RayAnomalyBackend
from server.gateway.llm_backend import LocalLLMBackend, RayLLMBackend
from server.gateway.server import Gateway, start_gateway

log = logging.getLogger("stackserve.runtime")


class _LateRayBackend(RayAnomalyBackend):
    """A Ray backend whose handle arrives once ``serve.run`` returns."""

    def __init__(self) -> None:
        super().__init__(None)

    async def models(self) -> list[dict]:
        if self.handle is None:
            raise RuntimeError("Serve application is still starting")
        return await super().models()


class _LateRayLLMBackend(RayLLMBackend):
    """The LLM app's handle arrives once its ``serve.run`` returns; ``failed`` if it never will."""

    def __init__(self) -> None:
        super().__init__(None)
        self.failed: BaseException | None = None

    async def info(self) -> dict:
        if self.handle is None:
            raise RuntimeError("the LLM application is still starting")
        return await super().info()


def start_ray_app(settings: Settings) -> Any:
    """Connect to (or start) Ray, start Serve and deploy the app; returns its handle."""
    import ray

    address = settings.ray.address or os.environ.get("RAY_ADDRESS")
    for attempt in (1, 2):
        if ray.is_initialized():
            break
        try:
            ray.init(
                address=address,
                num_cpus=None if address else settings.ray.num_cpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=True,
            )
        except Exception as exc:  # Ray raises a bare Exception for "node timed out during startup"
            # Seen on a loaded 2-core machine: the GCS did not write its port file, or the
            # node did not come up, in time. A second start has worked; a second failure is real.
            if attempt == 2 or address:
                raise
            log.warning("Ray failed to start (%s); retrying once", exc)
            ray.shutdown()
    # Run the DeploymentHandle's router on the caller's event loop instead of a
    # separate thread: each call then skips two cross-thread hand-offs. Set after
    # ray.init so Ray's own processes (its gRPC proxy, the benchmark baseline) keep
    # their defaults; read when ray.serve is first imported, just below.
    os.environ.setdefault("RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP", "0")
    from ray import serve

    from deployments.app import ANOMALY_APP, build_anomaly_app
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
    # Ray's proxies only expose applications that have a route prefix; our gateway
    # uses the handle and needs none. Per-call replica access logs are off: the
    # gateway writes one structured line per request already.
    return serve.run(
        build_anomaly_app(settings),
        name=ANOMALY_APP,
        route_prefix=f"/{ANOMALY_APP}" if settings.ray.grpc_proxy_port else None,
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )


def start_llm_app(settings: Settings) -> Any:
    """Deploy the LLM application next to the anomaly one (Ray and Serve already started)."""
    from ray import serve

    from deployments.app import LLM_APP, build_llm_app

    try:
        return serve.run(
            build_llm_app(settings),
            name=LLM_APP,
            route_prefix=None,
            logging_config={"enable_access_log": False, "log_level": "WARNING"},
        )
    except Exception:
        # a failed deployment would keep restarting replicas (each loading the model): remove it
        try:
            serve.delete(LLM_APP)
        except Exception as exc:
            log.warning("could not delete the failed LLM application: %s", exc)
        raise


async def stop_ray_app() -> None:
    """Shut Serve down from the loop its handle's router runs on, then Ray."""
    import ray
    from ray import serve

    if ray.is_initialized():
        try:
            await serve.shutdown_async()
        finally:
            ray.shutdown()


def local_backend(settings: Settings) -> LocalAnomalyBackend:
    """Score in this process (no Ray): for tests and machines without Ray."""
    from server.anomaly.scorer import load_scorer

    return LocalAnomalyBackend(load_scorer(settings))


def local_llm_backend(settings: Settings) -> LocalLLMBackend:
    """An LLM engine in this process (no Ray)."""
    from server.llm.engine import LLMEngine

    return LocalLLMBackend(LLMEngine(settings.llm).start(), settings.llm.model_name)


@asynccontextmanager
async def running_server(settings: Settings, use_ray: bool = True) -> AsyncIterator[Gateway]:
    """Everything up for the duration of the block; torn down cleanly on exit."""
    if not use_ray:
        llm = await asyncio.to_thread(local_llm_backend, settings) if settings.llm.enabled else None
        gateway = await start_gateway(settings, local_backend(settings), llm)
        try:
            yield gateway
        finally:
            await gateway.stop()
        return
    backend = _LateRayBackend()
    llm_backend = _LateRayLLMBackend() if settings.llm.enabled else None
    gateway = await start_gateway(settings, backend, llm_backend)
    try:
        backend.handle = await asyncio.to_thread(start_ray_app, settings)
        if llm_backend is not None:
            # after the anomaly app, so anomaly scoring is SERVING while the model loads; a
            # failure here (e.g. the configured backend is not built) leaves only the LLM down
            try:
                llm_backend.handle = await asyncio.to_thread(start_llm_app, settings)
            except Exception as exc:
                log.error("the LLM application failed to deploy: %s", exc)
                llm_backend.failed = exc
        yield gateway
    finally:
        await gateway.stop()
        await stop_ray_app()
