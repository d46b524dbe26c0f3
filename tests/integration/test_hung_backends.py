"""A backend that hangs (not dies): a wedged LLM step, a Ray handle call that never answers.

The LLM engine's step is made to block (its thread alive, as in a deadlock or a stuck kernel): a
caller with a deadline gets DEADLINE_EXCEEDED within it, the LLM's health turns NOT_SERVING (a live
thread is not a working engine), the anomaly service keeps answering, and everything comes back when
the step does. A handle whose calls never return is bounded the same way (``ray_errors.bounded``).
"""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.client import AnomalyClient, LLMClient
from server.config import load_settings
from server.gateway.llm_endpoint import RayLLMEndpoint
from server.gateway.ray_errors import ReplicaTimeoutError
from server.placement import local_llm_endpoint
from tests.support.in_process_gateway import Gateway
from tests.support.llm_fixtures import LLM_TEST_CONFIG, llm_test_backend
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
LLM_SERVICE = "stackserve.v1.LLMService"
ANOMALY_SERVICE = "stackserve.v1.AnomalyService"


class Wedge:
    """Blocks every engine step while set, as a stuck kernel would: the loop thread stays alive."""

    def __init__(self, engine) -> None:
        self.on = threading.Event()
        self.released = threading.Event()
        forward = engine.forward

        def wedged(*args, **kwargs):
            if self.on.is_set():
                self.released.wait()
            return forward(*args, **kwargs)

        engine.forward = wedged

    def set(self) -> None:
        self.released.clear()
        self.on.set()

    def release(self) -> None:
        self.on.clear()
        self.released.set()


@pytest.fixture(scope="module")
def wedgeable(trained, settings):
    cfg = load_settings(
        None, data_dir=str(settings.data_dir), gateway={"port": 0, "metrics_port": 0, "openai_port": 0},
        llm={**LLM_TEST_CONFIG, "backend": llm_test_backend(), "max_step_stall_s": 2.0}, rag={"enabled": False},
    )
    llm = local_llm_endpoint(cfg)
    wedge = Wedge(llm.engine)
    g = Gateway(cfg, llm)
    yield g, wedge
    wedge.release()
    g.close()
    llm.engine.shutdown()


def _health(address: str, service: str) -> int:
    with grpc.insecure_channel(address) as ch:
        return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_a_wedged_engine_gives_deadlines_not_hangs_and_health_sees_it(wedgeable):
    g, wedge = wedgeable
    address = f"127.0.0.1:{g.gw.port}"
    with LLMClient(address) as llm:  # healthy first: one real generation
        assert sum(len(p.token_ids) for p in llm.generate("Hello", max_tokens=4, ignore_eos=True)) == 4
    assert _health(address, LLM_SERVICE) == health_pb2.HealthCheckResponse.SERVING
    wedge.set()
    try:
        started = time.monotonic()
        with LLMClient(address) as llm, pytest.raises(grpc.RpcError) as err:
            list(llm.generate("Hello", max_tokens=8, timeout=3.0))
        took = time.monotonic() - started
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err.value
        assert took < 4.5, f"the caller waited {took:.1f} s past a 3 s deadline"
        # the stall limit is 2 s and the monitor probes every second
        wait_until(lambda: _health(address, LLM_SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING, 10,
                   "the LLM's health to see the wedged engine")
        with AnomalyClient(address) as anomaly:  # the other service keeps answering
            assert anomaly.score(np.ones((2, 9), dtype=np.float32), model="shuttle-rf").scores.shape == (2,)
        assert _health(address, ANOMALY_SERVICE) == health_pb2.HealthCheckResponse.SERVING
    finally:
        wedge.release()
    wait_until(lambda: _health(address, LLM_SERVICE) == health_pb2.HealthCheckResponse.SERVING, 15,
               "the LLM's health to come back with the engine")
    with LLMClient(address) as llm:
        assert sum(len(p.token_ids) for p in llm.generate("Hello", max_tokens=4, ignore_eos=True)) == 4


class _NeverAnswers:
    """A DeploymentHandle whose replica took the call and never answers (what a hung replica does)."""

    def __getattr__(self, name: str):
        outer = self

        class Method:
            def remote(self, *args):
                return outer._forever()

        return Method()

    def options(self, **_):
        return self

    async def _forever(self):
        await asyncio.Event().wait()


def test_calls_to_a_replica_that_never_answers_are_bounded():
    endpoint = RayLLMEndpoint(_NeverAnswers(), default_timeout_s=0.5, control_timeout_s=0.5)

    async def main():
        for call in (endpoint.health, endpoint.info, endpoint.stats):
            started = time.monotonic()
            with pytest.raises(ReplicaTimeoutError, match="no answer from the replica"):
                await call()
            assert time.monotonic() - started < 2

    asyncio.run(main())
