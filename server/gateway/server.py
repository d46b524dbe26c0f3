"""Build and run the grpc.aio gateway: services, health, reflection, limits, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from server.config import Settings
from server.gateway.anomaly_backend import AnomalyBackend
from server.gateway.anomaly_service import AnomalyService
from server.gateway.interceptors.observability import ObservabilityInterceptor
from server.gateway.registration import add_service
from server.gen.stackserve.v1 import anomaly_pb2
from server.observability.logs import ACCESS, log_event
from server.observability.metrics import serve_metrics

log = logging.getLogger("stackserve.gateway")
ANOMALY_SERVICE = anomaly_pb2.DESCRIPTOR.services_by_name["AnomalyService"]


@dataclass(slots=True)
class Gateway:
    server: grpc.aio.Server
    port: int
    metrics_port: int
    anomaly: AnomalyService
    health: health_aio.HealthServicer
    metrics_server: object
    warmup_task: asyncio.Task
    log_flusher: asyncio.Task
    drift_task: asyncio.Task
    rollout_task: asyncio.Task

    async def wait_ready(self, timeout: float) -> None:
        await asyncio.wait_for(asyncio.shield(self.warmup_task), timeout)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking calls, let running ones finish within ``grace``, then close."""
        await self.health.enter_graceful_shutdown()
        self.warmup_task.cancel()
        self.drift_task.cancel()
        self.rollout_task.cancel()
        await self.server.stop(grace)
        await self.anomaly.close()
        self.log_flusher.cancel()
        ACCESS.flush()
        with contextlib.suppress(Exception):
            self.metrics_server.shutdown()  # type: ignore[attr-defined]


async def _warm_up(anomaly: AnomalyService, backend: AnomalyBackend, health: health_aio.HealthServicer,
                   timeout: float) -> None:
    """Poll the backend until its models are loaded, then report SERVING."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.1
    while True:
        try:
            infos = await backend.models()
            break
        except Exception as exc:
            if loop.time() > deadline:
                log.error("backend did not become ready in %.0fs: %s", timeout, exc)
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    anomaly.load_catalog(infos)
    name = ANOMALY_SERVICE.full_name
    await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    log_event("stackserve.gateway", "ready", models=[i["name"] for i in infos])


async def start_gateway(settings: Settings, backend: AnomalyBackend) -> Gateway:
    """Start the gateway; health says NOT_SERVING until the backend's models are loaded."""
    cfg = settings.gateway
    options = [
        ("grpc.max_receive_message_length", cfg.max_message_bytes),
        ("grpc.max_send_message_length", cfg.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(
        interceptors=[ObservabilityInterceptor()],
        options=options,
        maximum_concurrent_rpcs=cfg.max_concurrent_rpcs,
    )
    anomaly = AnomalyService(settings, backend)
    add_service(server, ANOMALY_SERVICE, anomaly)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for service in ("", ANOMALY_SERVICE.full_name):
        await health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    reflection.enable_server_reflection((ANOMALY_SERVICE.full_name, health_name, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(f"{cfg.host}:{cfg.port}")
    if port == 0:
        raise OSError(f"cannot bind gRPC port {cfg.host}:{cfg.port}")
    await server.start()
    metrics_server, metrics_port = serve_metrics(cfg.host, cfg.metrics_port)
    warmup = asyncio.create_task(_warm_up(anomaly, backend, health, cfg.warmup_timeout_s))
    flusher = asyncio.create_task(_flush_access_log())
    drift = asyncio.create_task(anomaly.run_drift_loop())
    rollout = asyncio.create_task(anomaly.run_rollout_loop())
    log_event("stackserve.gateway", "listening", grpc_port=port, metrics_port=metrics_port)
    return Gateway(server, port, metrics_port, anomaly, health, metrics_server, warmup, flusher, drift, rollout)


async def _flush_access_log() -> None:
    """Write buffered access-log lines even when traffic stops."""
    while True:
        await asyncio.sleep(ACCESS.interval_s)
        ACCESS.flush()
