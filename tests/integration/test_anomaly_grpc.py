"""End to end over real gRPC: Ray Serve app + gateway started as `stackserve serve`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from kernels.stream_features import StreamFeatureState
from server.anomaly.data import load_shuttle
from server.client import AnomalyClient, AsyncAnomalyClient, score_request
from server.gen.stackserve.v1 import anomaly_pb2 as pb
from server.gen.stackserve.v1 import anomaly_pb2_grpc as pb_grpc
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
SCORE = "/stackserve.v1.AnomalyService/Score"


@pytest.fixture(scope="module")
def shuttle_test(trained):
    df = load_shuttle()
    split = trained["shuttle-rf"].split
    features = [c for c in df.columns if c != "anomaly"]
    idx = split.test
    return df[features].to_numpy(np.float32)[idx], df["anomaly"].to_numpy()[idx]


@pytest.fixture(scope="module")
def client(server):
    with AnomalyClient(server.address) as c:
        c.wait_ready(60)
        yield c


def raw_call(address: str, body: bytes, timeout: float = 10.0) -> grpc.RpcError:
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        call = ch.unary_unary(SCORE, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as err:
            call(body, timeout=timeout)
        return err.value


def test_health_and_reflection(server, client):
    assert client.health("") == "SERVING"
    assert client.health("stackserve.v1.AnomalyService") == "SERVING"
    with grpc.insecure_channel(server.address) as ch:
        with pytest.raises(grpc.RpcError) as err:
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="nope.Service"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        replies = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        names = {s.name for s in replies[0].list_services_response.service}
        assert {"stackserve.v1.AnomalyService", "grpc.health.v1.Health"} <= names
        replies = list(
            stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="stackserve.v1.AnomalyService")])
            )
        )
        assert replies[0].file_descriptor_response.file_descriptor_proto


def test_list_models(client, trained):
    models = {m.name: m for m in client.list_models()}
    assert set(models) == {"shuttle-rf", "shuttle-iforest", "shuttle-rf-stream"}
    assert models["shuttle-rf-stream"].uses_stream_features
    assert list(models["shuttle-rf"].feature_names) == [f"f{i}" for i in range(1, 10)]
    assert models["shuttle-rf"].version == trained["shuttle-rf"].version


@pytest.mark.parametrize("name", ["shuttle-rf", "shuttle-iforest"])
def test_scores_equal_the_compiled_model_and_keep_quality(client, trained, shuttle_test, name):
    X, y = shuttle_test
    got = client.score(X, model=name)
    want = trained[name].servable.score(X.astype(np.float64))
    np.testing.assert_allclose(got.scores, want, rtol=0, atol=1e-9)
    assert got.version == trained[name].version
    assert np.array_equal(got.is_anomaly, want >= trained[name].threshold)
    tp = int((got.is_anomaly & (y == 1)).sum())
    f1 = 2 * tp / (got.is_anomaly.sum() + y.sum())
    assert f1 >= (0.99 if name == "shuttle-rf" else 0.95)


def test_concurrent_small_requests_are_coalesced_on_the_ray_path(server, shuttle_test, trained):
    """Requests above anomaly.in_gateway_max_events (4 here) cross into Ray, merged by the coalescer."""
    X, _ = shuttle_test
    n, rows = 120, 5
    before = _metrics(server)

    async def main():
        async with AsyncAnomalyClient(server.address) as c:
            return await asyncio.gather(
                *[c.score(X[i * rows : (i + 1) * rows], model="shuttle-rf") for i in range(n)]
            )

    results = asyncio.run(main())
    want = trained["shuttle-rf"].servable.score(X[: n * rows].astype(np.float64))
    np.testing.assert_allclose(np.concatenate([r.scores for r in results]), want, atol=1e-9)
    after = _metrics(server)
    count = _delta(before, after, 'stackserve_gateway_batch_requests_count{model="shuttle-rf"}')
    total = _delta(before, after, 'stackserve_gateway_batch_requests_sum{model="shuttle-rf"}')
    assert total >= n and count < total, "requests were never merged"
    assert _delta(before, after, 'stackserve_anomaly_in_gateway_events_total{model="shuttle-rf"}') == 0


def test_single_events_are_scored_in_the_gateway(server, shuttle_test, trained):
    """Small requests never cross into Ray: the gateway's own copy of the champion answers, with the
    same scores and version as the replica."""
    X, _ = shuttle_test
    n = 200
    before = _metrics(server)

    async def main():
        async with AsyncAnomalyClient(server.address) as c:
            return await asyncio.gather(*[c.score(X[i : i + 1], model="shuttle-rf") for i in range(n)])

    results = asyncio.run(main())
    want = trained["shuttle-rf"].servable.score(X[:n].astype(np.float64))
    np.testing.assert_allclose([r.scores[0] for r in results], want, atol=1e-9)
    assert {r.version for r in results} == {trained["shuttle-rf"].version}
    after = _metrics(server)
    assert _delta(before, after, 'stackserve_anomaly_in_gateway_events_total{model="shuttle-rf"}') == n
    assert _delta(before, after, 'stackserve_gateway_batch_requests_sum{model="shuttle-rf"}') == 0


def _metrics(server) -> str:
    return urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()


def _delta(before: str, after: str, name: str) -> float:
    def value(body: str) -> float:
        try:
            return _metric(body, name)
        except AssertionError:
            return 0.0

    return value(after) - value(before)


def _metric(body: str, name: str) -> float:
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def test_stream_keeps_order_and_entity_state(client, trained, shuttle_test):
    X, _ = shuttle_test
    tag = uuid.uuid4().hex[:8]
    keys = [f"{tag}-{i % 3}" for i in range(120)]
    batches = [(X[i : i + 10], keys[i : i + 10]) for i in range(0, 120, 10)]
    got = np.concatenate([r.scores for r in client.score_stream(batches)])
    model = trained["shuttle-rf-stream"].servable
    state = StreamFeatureState(9, window=model.card.stream.window, alpha=model.card.stream.alpha)
    full = np.hstack([X[:120].astype(np.float64), state.transform(keys, X[:120])])
    np.testing.assert_allclose(got, model.score(full), atol=1e-9)
    # the unary path continues the same entity streams
    more = client.score(X[120:130], entity_keys=keys[:10])
    assert more.model == "shuttle-rf-stream"
    full = np.hstack([X[120:130].astype(np.float64), state.transform(keys[:10], X[120:130])])
    np.testing.assert_allclose(more.scores, model.score(full), atol=1e-9)


def test_stream_error_names_the_message(client, shuttle_test):
    X, _ = shuttle_test
    bad = [(X[:2], None), (X[:2, :4], None)]
    with pytest.raises(grpc.RpcError) as err:
        list(client.score_stream(bad, model="shuttle-rf"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "message 1" in err.value.details() and "num_features" in err.value.details()


def _unknown_field_request() -> bytes:
    body = score_request(np.ones((1, 9)), model="shuttle-rf").SerializeToString()
    return body + b"\x98\x06\x01"  # field 99 (tag varint 0x98 0x06), wire type varint, value 1


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        (b"\xff\xfe garbage \x00\x01", grpc.StatusCode.INVALID_ARGUMENT, "not a valid stackserve.v1.ScoreRequest"),
        (b"", grpc.StatusCode.INVALID_ARGUMENT, "num_features"),
        (score_request(np.ones((2, 7)), model="shuttle-rf").SerializeToString(), grpc.StatusCode.INVALID_ARGUMENT,
         "num_features: model 'shuttle-rf' takes 9"),
        (pb.ScoreRequest(model="shuttle-rf", num_features=9, features=[1.0] * 10).SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "not a multiple"),
        (score_request(np.full((1, 9), np.inf), model="shuttle-rf").SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "is infinite"),
        (score_request(np.full((1, 9), np.nan), model="shuttle-rf").SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "is NaN"),
        (score_request(np.ones((1, 9)), model="nope").SerializeToString(), grpc.StatusCode.NOT_FOUND, "model"),
        (score_request(np.ones((1, 9)), model="shuttle-rf", entity_keys=["a"]).SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "entity_keys"),
        (score_request(np.ones((2, 9)), model="shuttle-rf-stream").SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "entity_keys"),
        (_unknown_field_request(), grpc.StatusCode.INVALID_ARGUMENT, "unknown field number(s) [99]"),
        (score_request(np.ones((2, 9)), model="shuttle-rf", feature_names=list("abcdefghi")).SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "feature_names"),
    ],
    ids=["garbage", "empty", "wrong-width", "ragged", "inf", "nan", "unknown-model", "keys-on-plain-model",
         "stream-without-keys", "unknown-field", "wrong-names"],
)
def test_bad_input_gets_a_clear_status(server, client, body, code, needle):
    err = raw_call(server.address, body)
    assert err.code() == code, err.details()
    assert needle in err.details()
    assert client.score(np.ones((1, 9)), model="shuttle-rf").scores.shape == (1,)  # still up


def test_oversized_request_is_rejected_and_server_stays_up(server, client):
    X = np.random.default_rng(0).normal(size=(300_000, 9)).astype(np.float32)  # ~10.8 MB
    err = raw_call(server.address, score_request(X, model="shuttle-rf").SerializeToString())
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in err.details().lower() or "message" in err.details().lower()
    assert client.health() == "SERVING"


def test_negative_values_are_scored(client):
    r = client.score(-np.abs(np.random.default_rng(1).normal(size=(5, 9)) * 100), model="shuttle-iforest")
    assert r.scores.shape == (5,) and np.isfinite(r.scores).all()


def test_client_deadline_is_honoured(client):
    X = np.ones((5, 9))  # above in_gateway_max_events: a crossing into Ray takes more than 0.5 ms
    with pytest.raises(grpc.RpcError) as err:
        client.stub.Score(score_request(X, model="shuttle-rf"), timeout=0.0005)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert client.score(X, model="shuttle-rf").scores.shape == (5,)


def test_request_id_is_echoed_and_logged(server):
    rid = f"test-{uuid.uuid4().hex}"
    with grpc.insecure_channel(server.address) as ch:
        stub = pb_grpc.AnomalyServiceStub(ch)
        _, call = stub.Score.with_call(score_request(np.ones((1, 9)), model="shuttle-rf"),
                                       metadata=(("x-request-id", rid),), timeout=10)
        assert dict(call.trailing_metadata())["x-request-id"] == rid
    # the access log is flushed in bulk every 0.2 s
    lines = wait_until(lambda: [json.loads(ln) for ln in server.log().splitlines() if rid in ln and ln.startswith("{")],
                       10, "request id reaching the access log")
    assert lines and lines[0]["code"] == "OK" and lines[0]["method"] == SCORE


def test_metrics_endpoint(server, client):
    with pytest.raises(grpc.RpcError):
        client.score(np.ones((1, 3)), model="shuttle-rf")
    body = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    assert _metric(body, f'stackserve_grpc_requests_total{{code="INVALID_ARGUMENT",method="{SCORE}"}}') >= 1
    assert _metric(body, f'stackserve_grpc_requests_total{{code="OK",method="{SCORE}"}}') >= 1
    assert "stackserve_grpc_request_duration_seconds_bucket" in body
    assert "stackserve_grpc_requests_in_flight" in body
    assert _metric(body, 'stackserve_anomaly_events_total{model="shuttle-rf"}') >= 1


def test_ray_serve_grpc_proxy_baseline_serves_the_same_deployment(server, shuttle_test, trained):
    X, _ = shuttle_test
    with grpc.insecure_channel(server.ray_grpc_address) as ch:
        stub = pb_grpc.AnomalyServiceStub(ch)
        resp = stub.Score(score_request(X[:50], model="shuttle-rf"), metadata=(("application", "anomaly"),),
                          timeout=30)
    np.testing.assert_allclose(resp.scores, trained["shuttle-rf"].servable.score(X[:50].astype(np.float64)),
                               atol=1e-9)


def test_ray_replica_logs_are_json_lines(server):
    """Replica logs are JSON lines, as the gateway's are (server/serve_apps.py REPLICA_LOGGING): a bad
    request sent straight to the replica through Ray's proxy makes it log the failed call."""
    import glob
    import json

    started = time.time()
    with grpc.insecure_channel(server.ray_grpc_address) as ch:
        stub = pb_grpc.AnomalyServiceStub(ch)
        with pytest.raises(grpc.RpcError):
            stub.Score(score_request(np.ones((2, 4)), model="shuttle-rf"), metadata=(("application", "anomaly"),),
                       timeout=30)

    def fresh_lines() -> list[str]:
        # the server's private Ray head keeps its sessions under /tmp/ssray-* (server/ray_head.py)
        roots = [os.path.join(os.environ.get("RAY_TMPDIR", "/tmp"), "ray"), "/tmp/ssray-*"]
        files = [f for root in roots
                 for f in glob.glob(f"{root}/session_*/logs/serve/replica_anomaly_AnomalyScorer_*.log")
                 if os.path.getmtime(f) >= started - 1]
        return [line for f in files for line in open(f, encoding="utf-8").read().splitlines() if line.strip()]

    lines = wait_until(fresh_lines, 20, "the replica logging the failed call", interval=0.2)
    records = [json.loads(line) for line in lines]  # raises on a line that is not JSON
    assert all({"levelname", "message"} <= r.keys() for r in records)
    assert any(r["levelname"] in ("WARNING", "ERROR") for r in records)


def test_cli_health_score_and_models(server, settings, tmp_path, shuttle_test):
    X, _ = shuttle_test
    env = {**os.environ, "STACKSERVE_DATA_DIR": str(settings.data_dir)}
    cli = [sys.executable, "-m", "server.cli"]
    out = subprocess.run([*cli, "health", "--address", server.address], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "SERVING" in out.stdout
    csv = tmp_path / "events.csv"
    import pandas as pd

    pd.DataFrame(X[:40], columns=[f"f{i}" for i in range(1, 10)]).to_csv(csv, index=False)
    out = subprocess.run([*cli, "score", str(csv), "--address", server.address, "--batch-size", "16"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    scored = pd.read_csv(__import__("io").StringIO(out.stdout))
    assert len(scored) == 40 and {"score", "is_anomaly"} <= set(scored.columns)
    out = subprocess.run([*cli, "models", "list"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "shuttle-rf" in out.stdout and "champion" in out.stdout


def test_drift_is_detected_exported_and_logged(server, client, shuttle_test):
    """Runs last: it fills shuttle-iforest's drift window with shifted traffic."""
    X, _ = shuttle_test

    def scrape_until(name: str, ok, timeout: float) -> str:
        def satisfied() -> str | None:
            body = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
            if any(line.startswith(name + " ") for line in body.splitlines()) and ok(_metric(body, name)):
                return body
            return None

        return wait_until(satisfied, timeout, f"{name} satisfying the condition", interval=0.2)

    # earlier tests sent in-distribution test-split traffic to shuttle-rf: no alarm
    scrape_until('stackserve_drift_status{model="shuttle-rf"}', lambda v: v == 0, 60)
    shifted = X[:4096].copy()
    shifted[:, 0] += 40.0  # f1, in Shuttle's units (std ~13)
    for i in range(0, len(shifted), 512):
        client.score(shifted[i : i + 512], model="shuttle-iforest")
    scrape_until('stackserve_drift_status{model="shuttle-iforest"}', lambda v: v == 2, 60)
    # the alarm can fire (KS) on a recompute that saw only part of the shifted rows: wait for the
    # recompute that saw them all before reading the other series
    body = scrape_until('stackserve_feature_drift_psi{feature="f1",model="shuttle-iforest"}', lambda v: v > 0.25, 30)
    assert _metric(body, 'stackserve_drift_status{model="shuttle-iforest"}') == 2
    assert _metric(body, 'stackserve_feature_drift_ks_pvalue{feature="f1",model="shuttle-iforest"}') < 1e-6
    assert _metric(body, 'stackserve_feature_drift_psi{feature="f3",model="shuttle-iforest"}') < 0.1
    events = wait_until(lambda: [json.loads(ln) for ln in server.log().splitlines()
                                 if ln.startswith("{") and '"stackserve.drift"' in ln and "shuttle-iforest" in ln],
                        10, "a drift log event", interval=0.1)
    assert events[-1]["status"] == "alert" and events[-1]["top_features"][0]["feature"] == "f1"
