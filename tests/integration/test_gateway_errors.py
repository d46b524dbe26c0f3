"""What a client sees when things go wrong, on a real gateway in this process: statuses that fit their
trailer, fields named, no internals, and every refusal counted, including those gRPC core used to
answer before our code ran (oversize bodies, unknown methods)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import urllib.request

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from server.client import AnomalyClient, score_request
from server.config import load_settings
from server.gateway.ray_errors import ReplicaLostError
from server.gateway.server import start_gateway
from server.placement import local_anomaly_endpoint
from tests.support.hypothesis_profiles import examples
from tests.support.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.integration
LIMIT = 64 * 1024
INTERNALS = ("4242", "10.1.2.3", "7f3a9c", "RayActorError", "Traceback")


class FailingEndpoint:
    """The real endpoint for model listing; scoring fails as a lost Ray replica does, when asked to."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.fail = False  # scoring fails
        self.dead = False  # everything fails, the catalog (health's probe) included

    async def models(self):
        if self.dead:
            raise ReplicaLostError("DeploymentUnavailableError: no replica of AnomalyScorer")
        return await self.inner.models()

    async def score(self, model, X, request_ids):
        if self.fail:
            raise ReplicaLostError("RayActorError: The actor 7f3a9c died unexpectedly (pid=4242, ip=10.1.2.3)")
        return await self.inner.score(model, X, request_ids)


@pytest.fixture(scope="module")
def gateway(trained, settings):
    cfg = load_settings(None, data_dir=str(settings.data_dir), gateway={
        "port": 0, "metrics_port": 0, "openai_port": None, "max_message_bytes": LIMIT,
        "health_probe_interval_s": 0.2, "health_probe_timeout_s": 1.0}, rag={"enabled": False})
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    endpoint = FailingEndpoint(local_anomaly_endpoint(cfg))

    async def start():
        gw = await start_gateway(cfg, endpoint)
        await gw.wait_ready(60)
        return gw

    gw = asyncio.run_coroutine_threadsafe(start(), loop).result(120)
    yield gw, endpoint
    asyncio.run_coroutine_threadsafe(gw.stop(), loop).result(60)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def raw_call(port: int, method: str, body: bytes, timeout: float = 10) -> grpc.RpcError | bytes:
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", -1)]) as ch:
        call = ch.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            return call(body, timeout=timeout)
        except grpc.RpcError as exc:
            return exc


def counted(port: int, method: str, code: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "stackserve_grpc_requests_total" and s.labels == {"method": method, "code": code}:
                return s.value
    return 0.0


def counted_reaches(port: int, method: str, code: str, want: float, timeout: float = 5.0) -> float:
    """The counter once it reaches ``want`` (or its value at the timeout): the server counts a call
    when its handler completes, which can be just after the client has read the status."""
    value = 0.0

    def reached() -> bool:
        nonlocal value
        value = counted(port, method, code)
        return value == want

    with contextlib.suppress(WaitTimeout):  # not raised: the caller's assert reports the value it got
        wait_until(reached, timeout, f"{method} {code} counted {want:g} times")
    return value


SCORE = "/stackserve.v1.AnomalyService/Score"
X = np.ones((2, 9), dtype=np.float32)


def test_a_huge_model_name_gets_not_found_every_time_with_a_short_status(gateway):
    gw, _ = gateway
    body = score_request(X, "m" * 50_000).SerializeToString()  # under the 64 KiB limit, over the 8 KiB trailer
    for _ in range(5):  # was RESOURCE_EXHAUSTED at random: the echoed name overflowed the trailer
        err = raw_call(gw.port, SCORE, body)
        assert err.code() == grpc.StatusCode.NOT_FOUND, err.details()
        assert len(err.details()) < 2048 and err.details().startswith("model: ") and "chars)" in err.details()
        assert "shuttle-rf" in err.details()  # the models served survive the clipping


@pytest.mark.parametrize(("build", "field"), [
    (lambda: score_request(X, "QQ"), "model"),
    (lambda: score_request(X, "shuttle-rf-stream", ["ok", "QQ"]), "entity_keys[1]"),
])
def test_invalid_utf8_names_the_field(gateway, build, field):
    gw, _ = gateway
    err = raw_call(gw.port, SCORE, build().SerializeToString().replace(b"QQ", b"\xff\xfe"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith(f"{field}: ") and "UTF-8" in err.details(), err.details()


def test_oversize_body_is_answered_and_counted_by_the_gateway(gateway):
    gw, _ = gateway
    before = counted(gw.metrics_port, SCORE, "RESOURCE_EXHAUSTED")
    err = raw_call(gw.port, SCORE, score_request(np.ones((LIMIT // 36 + 50, 9), np.float32)).SerializeToString())
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limit is 65536" in err.details() and "gateway.max_message_bytes" in err.details()
    assert counted_reaches(gw.metrics_port, SCORE, "RESOURCE_EXHAUSTED", before + 1) == before + 1


def test_unknown_methods_are_unimplemented_and_counted_under_one_label(gateway):
    gw, _ = gateway
    before = counted(gw.metrics_port, "<unknown method>", "UNIMPLEMENTED")
    for method in ("/stackserve.v1.AnomalyService/Nope", "/no.such.Service/Call", "/" + "x" * 3000):
        err = raw_call(gw.port, method, b"")
        assert err.code() == grpc.StatusCode.UNIMPLEMENTED and len(err.details()) < 100
    assert counted_reaches(gw.metrics_port, "<unknown method>", "UNIMPLEMENTED", before + 3) == before + 3


def test_a_lost_replica_is_unavailable_without_internals(gateway):
    gw, endpoint = gateway
    endpoint.fail = True
    try:
        with AnomalyClient(f"127.0.0.1:{gw.port}") as c, pytest.raises(grpc.RpcError) as err:
            c.score(np.ones((64, 9), np.float32), model="shuttle-rf", request_id="lost-replica-1")
    finally:
        endpoint.fail = False
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "lost-replica-1" in err.value.details()  # the request id: what to quote in a bug report
    assert not any(s in err.value.details() for s in INTERNALS), err.value.details()


@given(st.binary(max_size=400))
@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          database=None)
def test_fuzzed_score_bodies_get_client_statuses_and_the_server_keeps_serving(gateway, body):
    gw, _ = gateway
    out = raw_call(gw.port, SCORE, body)
    if isinstance(out, grpc.RpcError):
        assert out.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), (body, out.details())
        assert not any(s in out.details() for s in INTERNALS)
    with AnomalyClient(f"127.0.0.1:{gw.port}") as c:
        assert c.health() == "SERVING"


def test_health_says_not_serving_while_the_backend_is_dead_and_serving_once_it_is_back(gateway):
    gw, endpoint = gateway
    service = "stackserve.v1.AnomalyService"

    def wait_for(status: str, timeout: float = 10.0) -> float:
        started = time.monotonic()
        with AnomalyClient(f"127.0.0.1:{gw.port}") as c:
            wait_until(lambda: (c._health(service, 2.0), c._health("", 2.0)) == (status, status), timeout,
                       f"health {status}")
        return time.monotonic() - started

    wait_for("SERVING")
    endpoint.dead = True
    try:
        assert wait_for("NOT_SERVING") < 3.0  # a probe every 0.2 s, 1 s timeout
    finally:
        endpoint.dead = False
    assert wait_for("SERVING") < 3.0
