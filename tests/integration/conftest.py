"""Start the real app once per session: Ray + Serve apps + gateway, on free ports.

The server runs as ``stackserve serve`` in a subprocess, exactly as a user starts
it, against the session's trained MLflow store; tests talk real gRPC to it. The LLM
runs small (4 KV-cache slots, 512-token context, 2 waiting) so CI stays quick and the
queue limit is reachable; its backend is ``STACKSERVE_TEST_LLM_BACKEND`` if set, else
the config default where it is built on this machine, else ``torch-fp32`` (never under ``CI=true``:
there a missing C++ step fails the run).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import psutil
import pytest

from server.gateway.llm_endpoint import LocalLLMEndpoint
from server.launcher import RunningServer, ServerStartError, free_port, start_server
from tests.support.llm_fixtures import LLM_TEST_CONFIG, llm_test_backend
from tests.support.ray_cluster import ExternalCluster


@pytest.fixture(scope="session")
def server(trained, settings, tmp_path_factory) -> Iterator[RunningServer]:
    env = {
        "STACKSERVE_DATA_DIR": str(settings.data_dir),
        "STACKSERVE__DRIFT__INTERVAL_S": "0.5",  # drift recomputed often enough to observe in a test
        "STACKSERVE__RAY__HTTP_PROXY_PORT": str(free_port()),
        # a shadow rollout on the Ray path (test_rollout.py): the champion version as its own challenger,
        # so the other tests see unchanged answers; no verdict is ever reached (min_requests)
        "STACKSERVE__ROLLOUT__MODEL": "shuttle-iforest",
        "STACKSERVE__ROLLOUT__CHALLENGER_VERSION": "1",
        "STACKSERVE__ROLLOUT__MODE": "shadow",
        "STACKSERVE__ROLLOUT__MIN_REQUESTS": "1000000",
        "STACKSERVE__ROLLOUT__EVAL_INTERVAL_S": "0.5",
        # requests of up to 4 events are scored in the gateway, larger ones by the Ray replicas:
        # the tests reach both paths (test_anomaly_grpc.py)
        "STACKSERVE__ANOMALY__IN_GATEWAY_MAX_EVENTS": "4",
        # the LLMEngine and Embedder deployments, not the default models in the gateway (auto on one
        # machine): the Ray paths stay tested here; tests/models/test_rag_embedder.py tests the placement
        "STACKSERVE__LLM__PLACEMENT": "ray",
        "STACKSERVE__RAG__EMBEDDER__PLACEMENT": "ray",
        "STACKSERVE__LLM__BACKEND": llm_test_backend(),
        **{f"STACKSERVE__LLM__{k.upper()}": str(v) for k, v in LLM_TEST_CONFIG.items()},
    }
    running = start_or_fail(
        workdir=tmp_path_factory.mktemp("server"), env=env, ray_grpc_port=free_port(), ready_timeout=240
    )
    yield running
    # test_shutdown.py stops it (runs last); when that test was not selected, stop it here
    if running.process.poll() is None:
        code = running.stop(timeout=60)
        assert code == 0, f"server exited with {code}:\n{running.log_tail(3000)}"


class SharedLLMEndpoint(LocalLLMEndpoint):
    """One in-process engine for every in-process gateway of the session: a gateway's stop closes its
    endpoint, so this one's close waits for the session's end (``shared_llm``)."""

    async def close(self) -> None:
        return None


@pytest.fixture(scope="session")
def shared_llm(settings) -> Iterator[SharedLLMEndpoint]:
    """The LLM engine (LLM_TEST_CONFIG on the test backend) behind the in-process gateways of the tracing,
    metrics, chat and security tests: loaded once, not once per test."""
    from server.config import load_settings
    from server.llm.engine import LLMEngine

    cfg = load_settings(None, data_dir=str(settings.data_dir), llm={**LLM_TEST_CONFIG, "backend": llm_test_backend()})
    engine = LLMEngine(cfg.llm).start()
    try:
        yield SharedLLMEndpoint(engine, cfg.llm.model_name)
    finally:
        engine.shutdown()


@pytest.fixture(scope="session")
def external_cluster(trained, settings, tmp_path_factory) -> Iterator[ExternalCluster]:
    """A Ray cluster the gateway did not start (head + worker node), shared by the attach and two-node
    tests; each deploys the application it needs (tests/support/ray_cluster.py)."""
    cluster = ExternalCluster.create(tmp_path_factory.mktemp("external-cluster"), settings.data_dir)
    try:
        cluster.start_head()
        cluster.ensure_worker()
        yield cluster
    finally:
        cluster.stop()


def start_or_fail(args: Sequence[str] = (), **kwargs: Any) -> RunningServer:
    """``server.launcher.start_server``, a test failure (with the server's log) when it does not start."""
    # the Triton interpreter is for the kernel tests in this process, not for a server
    kwargs["env"] = {"TRITON_INTERPRET": None, **(kwargs.get("env") or {})}
    try:
        return start_server(args, **kwargs)
    except ServerStartError as exc:
        pytest.fail(str(exc))


def server_processes(server) -> list[psutil.Process]:
    """The gateway, its children, and the private Ray head's session (ray start --block and what it runs)."""
    root = psutil.Process(server.process.pid)
    procs = [root, *root.children(recursive=True)]
    sessions = {os.getsid(p.pid) for p in procs if p.is_running()}
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getsid(p.pid) in sessions and p not in procs:
                procs.append(p)
        except (ProcessLookupError, psutil.Error):
            continue
    return procs
