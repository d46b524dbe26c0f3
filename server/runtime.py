"""Start and stop the whole server: Ray, the Serve app, the gateway.

The gateway starts first and reports NOT_SERVING while Ray and the replicas come
up, so health checks and clients see "warming up" (UNAVAILABLE) rather than a
refused connection.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from server.config import Settings
from server.gateway.anomaly_endpoint import LocalAnomalyEndpoint, RayAnomalyEndpoint
from server.gateway.embedder_endpoint import RayEmbedder
from server.gateway.llm_endpoint import LLMEndpoint, LocalLLMEndpoint, RayLLMEndpoint
from server.gateway.server import Gateway, start_gateway
from server.llm.serving import EngineInfo, LLMJob, Piece
from server.rag.embedder import Embedder
from server.rag.retrieval_workload import RetrievalWorkload
from server.ray_head import PrivateRayHead

log = logging.getLogger("stackserve.runtime")


class _LateRayAnomalyEndpoint(RayAnomalyEndpoint):
    """A Ray endpoint whose handle arrives once ``serve.run`` returns."""

    def __init__(self) -> None:
        super().__init__(None)

    async def models(self) -> list[dict]:
        if self.handle is None:
            raise RuntimeError("Serve application is still starting")
        return await super().models()


class _LateLLMEndpoint:
    """The LLM endpoint chosen once Ray is up (``llm_in_gateway``): an engine in this process, or
    the LLMEngine deployment; ``failed`` if neither will come."""

    def __init__(self) -> None:
        self.target: LLMEndpoint | None = None
        self.failed: BaseException | None = None

    def _ready(self) -> LLMEndpoint:
        if self.target is None:
            raise RuntimeError("the LLM is still starting")
        return self.target

    async def info(self) -> EngineInfo:
        return await self._ready().info()

    async def stats(self) -> tuple[int, int, float]:
        return await self._ready().stats()

    async def counters(self) -> dict[str, int]:
        return await self._ready().counters()

    def generate(self, job: LLMJob, timeout_s: float | None, request_id: str) -> AsyncIterator[Piece]:
        return self._ready().generate(job, timeout_s, request_id)

    async def tokenize(self, job: LLMJob) -> list[int]:
        return await self._ready().tokenize(job)

    async def detokenize(self, ids: list[int]) -> str:
        return await self._ready().detokenize(ids)

    async def close(self) -> None:
        close = getattr(self.target, "close", None)
        if close is not None:
            await close()


@dataclass(slots=True)
class RayAttachment:
    """What this process may tear down on exit.

    ``owns_cluster``: Ray was started here (a local instance), so shutting it down harms no one.
    ``owned_apps``: Serve applications this process deployed; on a cluster it joined, only those
    are deleted, never what someone else deployed (``serve deploy``) and never Serve itself.
    """

    owns_cluster: bool
    owned_apps: list[str] = field(default_factory=list)
    head: PrivateRayHead | None = None  # the Ray head this process started, stopped last


def connect_ray(settings: Settings) -> RayAttachment:
    """Join the configured cluster (``ray.address`` / ``RAY_ADDRESS``), or one already running on
    this machine (``ray start --head``), or else start a local instance that this process owns."""
    import ray

    address = settings.ray.address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return RayAttachment(owns_cluster=False)
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": True}
    if address:
        ray.init(address=address, **kwargs)
        log.info("joined the Ray cluster at %s", address)
        return RayAttachment(owns_cluster=False)
    recorded = _recorded_cluster()
    if recorded:
        ray.init(address=recorded, **kwargs)
        log.warning("joined the Ray cluster already running on this machine (%s); its applications are served "
                    "as deployed and left running on exit", recorded)
        return RayAttachment(owns_cluster=False)
    _private_ray_token(settings)
    for attempt in (1, 2):
        head = PrivateRayHead(settings.ray.num_cpus)  # its own session: server/ray_head.py says why
        try:
            ray.init(address=head.start(), **kwargs)
            break
        except Exception as exc:
            # Seen on a loaded 2-core machine: the node did not come up in time. A second start
            # has worked; a second failure is real.
            head.stop()
            if attempt == 2:
                raise
            log.warning("Ray failed to start (%s); retrying once", exc)
            ray.shutdown()
    _warn_if_unauthenticated()
    return RayAttachment(owns_cluster=True, head=head)


def _private_ray_token(settings: Settings) -> None:
    """Token authentication for the private head, with a token of this deployment's own
    (``data_dir/ray_auth_token``, mode 0600): ``ray start`` turns it on only when a token exists, and
    ~/.ray/auth_token may be another cluster's. An explicit RAY_AUTH_MODE / token is respected."""
    if os.environ.get("RAY_AUTH_MODE"):
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        path = settings.data_dir / "ray_auth_token"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)
    try:  # Ray reads its config once per process: make this process (the driver) see token mode too
        from ray._private.authentication.authentication_token_setup import _enable_token_auth
        from ray._raylet import AuthenticationTokenLoader

        _enable_token_auth()
        AuthenticationTokenLoader.instance().reset_cache()
    except ImportError:
        log.warning("this Ray has no token authentication; the private head runs without it")


def _warn_if_unauthenticated() -> None:
    """Say so loudly when the embedded Ray runs without token authentication (RAY_AUTH_MODE=disabled):
    anyone who can reach its ports can then run code in this process's cluster."""
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled
    except ImportError:  # a Ray without token authentication
        return
    if not is_token_auth_enabled():
        log.warning("the embedded Ray runs WITHOUT token authentication (RAY_AUTH_MODE=%s): its GCS and raylet "
                    "ports accept any local or remote caller; unset RAY_AUTH_MODE or set it to token",
                    os.environ.get("RAY_AUTH_MODE", ""))


def _recorded_cluster() -> str | None:
    """The head that `ray start` last recorded on this machine, which a plain ``ray.init()`` would
    join; ``None`` when there is none, so we start (and own) a local instance."""
    try:
        from ray._private.services import find_bootstrap_address
    except ImportError:  # private helper moved: never assume we own a cluster we cannot rule out
        return "auto"
    return find_bootstrap_address(None)


# Replica logs as JSON lines (Ray Serve's encoding), like the gateway's own; per-call access logs off:
# the gateway writes one structured line per request already.
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


def disconnect_ray(attachment: RayAttachment) -> None:
    """For a driver that deployed nothing (a batch job): disconnect, and stop a head it started."""
    import ray

    ray.shutdown()
    if attachment.head is not None:
        attachment.head.stop()


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
    return RetrievalWorkload(settings, embedder) if settings.rag.enabled else None


def needs_ray(settings: Settings) -> bool:
    """Whether serving ``settings`` needs Ray: the anomaly models run in Serve replicas, and a model
    placed on Ray (``placement: ray``) does too; an LLM-only or LLM + retrieval server with models in
    its own process needs none (it starts in seconds and holds no Ray processes)."""
    return (settings.anomaly.enabled or (settings.llm.enabled and settings.llm.placement == "ray")
            or (settings.rag.enabled and settings.rag.embedder.placement == "ray"))


@asynccontextmanager
async def running_server(settings: Settings, use_ray: bool = True) -> AsyncIterator[Gateway]:
    """Everything up for the duration of the block; torn down cleanly on exit."""
    extra_models = list(settings.llm.also_serve) if settings.llm.enabled else []
    if not use_ray:
        llm = None
        extra: list[LLMEndpoint] = []
        if settings.llm.enabled:
            # as on the Ray path, an LLM that cannot start leaves only the LLM down
            try:
                llm = await asyncio.to_thread(local_llm_endpoint, settings)
                for model in extra_models:
                    extra.append(await asyncio.to_thread(local_llm_endpoint, settings, model))
            except Exception as exc:
                log.error("the LLM engine failed to start: %s", exc)
        anomaly = local_anomaly_endpoint(settings) if settings.anomaly.enabled else None
        gateway = await start_gateway(settings, anomaly, llm, retrieval_workload(settings), extra_llm_endpoints=extra)
        try:
            yield gateway
        finally:
            await gateway.stop()
        return
    endpoint = _LateRayAnomalyEndpoint() if settings.anomaly.enabled else None
    llm_endpoint = _LateLLMEndpoint() if settings.llm.enabled else None
    extra_endpoints = {model: _LateLLMEndpoint() for model in extra_models}
    embedder = RayEmbedder(asyncio.get_running_loop()) if settings.rag.enabled else None
    gateway = await start_gateway(settings, endpoint, llm_endpoint, retrieval_workload(settings, embedder),
                                  extra_llm_endpoints=list(extra_endpoints.values()))  # fmt: skip
    attachment = RayAttachment(owns_cluster=False)
    try:
        attachment = await asyncio.to_thread(connect_ray, settings)
        if endpoint is not None:
            endpoint.handle = await asyncio.to_thread(start_ray_app, settings, attachment)
        if embedder is not None:
            # before the LLM: retrieval serves while the model loads
            try:
                if in_gateway(settings.rag.embedder.placement, attachment):
                    log.info("embedder in the gateway process (rag.embedder.placement=%s)",
                             settings.rag.embedder.placement)
                    embedder.place_local(await asyncio.to_thread(local_embedder, settings))
                else:
                    embedder.attach(await asyncio.to_thread(start_embedder_app, settings, attachment))
            except Exception as exc:
                log.error("the Embedder application failed to deploy: %s", exc)
                embedder.fail(exc)
        if llm_endpoint is not None:
            # after the anomaly app, so anomaly scoring is SERVING while the model loads; a
            # failure here (e.g. the configured LLM backend is not built) leaves only the LLM down
            try:
                if llm_in_gateway(settings, attachment):
                    log.info("LLM engine in the gateway process (llm.placement=%s)", settings.llm.placement)
                    llm_endpoint.target = await asyncio.to_thread(local_llm_endpoint, settings)
                else:
                    llm_endpoint.target = RayLLMEndpoint(await asyncio.to_thread(start_llm_app, settings, attachment))
            except Exception as exc:
                log.error("the LLM application failed to deploy: %s", exc)
                llm_endpoint.failed = exc
        for model, late in extra_endpoints.items():  # each its own engine: its own application on Ray
            try:
                if llm_in_gateway(settings, attachment):
                    late.target = await asyncio.to_thread(local_llm_endpoint, settings, model)
                else:
                    late.target = RayLLMEndpoint(await asyncio.to_thread(start_llm_app, settings, attachment, model))
            except Exception as exc:
                log.error("the LLM application of %s failed to deploy: %s", model, exc)
                late.failed = exc
        yield gateway
    finally:
        if embedder is not None and embedder.handle is None and embedder.local is None and embedder.failed is None:
            embedder.fail(RuntimeError("the server stopped before the Embedder application deployed"))
        await gateway.stop()
        await stop_ray_app(attachment)
