"""Challenger rollout over real gRPC: bad challengers are rolled back, a good one is promoted.

Each scenario runs an in-process gateway with the real local endpoint (no Ray: a second Ray
app per scenario would cost ~15 s each) against the session's MLflow store. The challenger
is a real registered version (the session's shuttle-rf run registered again under a
scenario-specific name, so scenarios and the other tests never share an alias or a metric);
its faults come from the documented ``anomaly.fault_injection`` config. The Ray deployment
path is checked by ``test_ray_app_shadows_to_the_challenger`` on the session server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from server.anomaly import registry
from server.anomaly.data import load_shuttle
from server.client import AnomalyClient, AsyncAnomalyClient
from server.config import load_settings
from server.gateway.server import start_gateway
from server.placement import local_anomaly_endpoint
from tests.support.waiting import WaitTimeout, poll_async, wait_until

pytestmark = pytest.mark.integration
ROWS_PER_REQUEST = 8


@pytest.fixture(scope="module")
def rows(trained):
    df = load_shuttle()
    X = df[[f"f{i}" for i in range(1, 10)]].to_numpy(np.float32)[trained["shuttle-rf"].split.test]
    return X[np.random.default_rng(0).permutation(len(X))]


def _register_pair(settings, trained, name: str) -> None:
    """Versions 1 (champion) and 2 of ``name``, both the session's trained shuttle-rf artifacts."""
    client = registry.connect(settings)
    run_id = trained["shuttle-rf"].run_id
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias(name, "champion", "1")


def _settings(settings, name: str, mode: str, fault: dict, **rollout):
    return load_settings(
        None,
        data_dir=str(settings.data_dir),
        gateway={"port": 0, "metrics_port": 0, "openai_port": 0},
        anomaly={"models": [name], "default_model": name, "default_stream_model": name, "fault_injection": fault},
        drift={"enabled": False},
        rollout={
            "model": name, "challenger_version": "2", "mode": mode, "canary_share": 0.5, "window_s": 60,
            "min_requests": 100, "eval_interval_s": 0.2, "promote_after_s": 600, **rollout,
        },
    )


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(getattr(record, "fields", {}))


async def _drive(c: AsyncAnomalyClient, X: np.ndarray, name: str, until, deadline_s: float = 60) -> list:
    """Concurrent clients send until ``until()`` holds; returns every response (or exception)."""
    out: list = []
    deadline = time.monotonic() + deadline_s

    async def worker(w: int) -> None:
        i = w
        while not until():
            assert time.monotonic() < deadline, "rollout never reached the expected state"
            start = (i * ROWS_PER_REQUEST) % (len(X) - ROWS_PER_REQUEST)
            try:
                out.append(await c.score(X[start : start + ROWS_PER_REQUEST], model=name))
            except Exception as exc:  # counted, not raised: the test asserts there are none
                out.append(exc)
            i += 4

    await asyncio.gather(*[worker(w) for w in range(4)])
    return out


def _metric(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


@pytest.mark.parametrize(
    ("mode", "fault", "reason"),
    [
        ("canary", "fail", "error rate"),
        ("canary", "shift", "PSI"),
        ("shadow", "fail", "error rate"),
        ("shadow", "shift", "PSI"),
    ],
)
def test_bad_challenger_is_rolled_back_without_failing_a_client(trained, settings, rows, mode, fault, reason):
    name = f"rollout-{mode}-{fault}"
    _register_pair(settings, trained, name)
    faults = (
        {"model_key": f"{name}@v2", "fail_when_feature": "f1", "above": 49.0}  # ~30% of rows: most batches fail
        if fault == "fail"
        else {"model_key": f"{name}@v2", "score_offset": 0.5}
    )
    cfg = _settings(settings, name, mode, faults)
    capture = Capture()
    logging.getLogger("stackserve.rollout").addHandler(capture)
    logging.getLogger("stackserve.rollout").setLevel(logging.INFO)

    async def main():
        gw = await start_gateway(cfg, local_anomaly_endpoint(cfg))
        await gw.wait_ready(30)
        svc = gw.anomaly.scoring
        assert svc.rollout is not None and list(svc.catalog) == [name]  # the challenger is not a client model
        async with AsyncAnomalyClient(f"127.0.0.1:{gw.port}") as c:
            assert [m.name for m in await c.list_models()] == [name]
            responses = await _drive(c, rows, name, lambda: svc.rollout.controller.state.name != "RUNNING")
            failed = [r for r in responses if isinstance(r, Exception)]
            assert failed == [], f"{len(failed)} client requests failed: {failed[:3]}"
            if mode == "shadow":
                assert {r.version for r in responses} == {"1"}  # shadow scores are never returned
            status = await c.rollout()
            assert (status.active, status.state, status.mode) == (True, "rolled_back", mode)
            assert reason in status.reason
            assert status.challenger.total_requests >= 100 and status.champion.version == "1"
            if fault == "fail":
                assert status.challenger.total_errors > 0
            # rolled back: nothing more reaches the challenger, everything is answered by v1
            await poll_async(lambda: svc.rollout.shadow_inflight == 0, 30, "shadow copies in flight drained",
                             interval=0.01)
            before = (await c.rollout()).challenger.total_requests
            after_responses = [await c.score(rows[i : i + 4], model=name) for i in range(0, 200, 4)]
            assert {r.version for r in after_responses} == {"1"}
            assert (await c.rollout()).challenger.total_requests == before
            out = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "server.cli", "rollout", "status", "--address",
                                 f"127.0.0.1:{gw.port}"], capture_output=True, text=True, timeout=60,
            )
            assert out.returncode == 0 and "rolled_back" in out.stdout and reason in out.stdout, out.stderr
        await gw.stop()

    try:
        asyncio.run(main())
    finally:
        logging.getLogger("stackserve.rollout").removeHandler(capture)
    assert _metric("stackserve_rollout_state", model=name) == 1
    assert _metric("stackserve_rollout_transitions_total", model=name, to="rolled_back") == 1
    # the verdict needs >= 100 challenger requests; only the rows the fault matches fail
    arm = {o: _metric("stackserve_rollout_requests_total", model=name, arm="challenger", outcome=o) or 0.0
           for o in ("ok", "error")}
    assert arm["ok"] + arm["error"] >= 100
    assert (arm["error"] > 0) if fault == "fail" else (arm["error"] == 0)
    events = [e for e in capture.events if e.get("model") == name and e.get("state") == "rolled_back"]
    assert len(events) == 1 and reason in events[0]["reason"]
    assert events[0]["challenger_requests"] >= 100 and "score_psi" in events[0]
    print(f"rollback {mode}/{fault}: {events[0]['running_for_s']} s after start, "
          f"{events[0]['challenger_requests']} challenger requests, reason: {events[0]['reason']}")


def test_good_challenger_is_promoted(trained, settings, rows):
    name = "rollout-good"
    _register_pair(settings, trained, name)
    cfg = _settings(settings, name, "canary", {}, promote_after_s=2.0)

    async def main():
        gw = await start_gateway(cfg, local_anomaly_endpoint(cfg))
        await gw.wait_ready(30)
        svc = gw.anomaly.scoring
        async with AsyncAnomalyClient(f"127.0.0.1:{gw.port}") as c:
            responses = await _drive(c, rows, name, lambda: svc.rollout.controller.state.name != "RUNNING")
            assert not [r for r in responses if isinstance(r, Exception)]
            assert {r.version for r in responses} == {"1", "2"}  # both arms answered during the canary
            status = await c.rollout()
            assert status.state == "promoted", status.reason
            after = [await c.score(rows[i : i + 4], model=name) for i in range(0, 100, 4)]
            assert {(r.model, r.version) for r in after} == {(name, "2")}
            streamed = [r async for r in c.score_stream([(rows[:4], None), (rows[4:8], None)], model=name)]
            assert [r.version for r in streamed] == ["2", "2"]  # streams go through the same routing
            want = trained["shuttle-rf"].servable.score(rows[:4].astype(np.float64))
            np.testing.assert_allclose(after[0].scores, want, atol=1e-9)
            assert [(m.name, m.version) for m in await c.list_models()] == [(name, "2")]
            out = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "server.cli", "rollout", "status", "--json", "--address",
                                 f"127.0.0.1:{gw.port}"], capture_output=True, text=True, timeout=60,
            )
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["state"] == "promoted"
        await gw.stop()

    asyncio.run(main())
    client = registry.connect(settings)
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    assert _metric("stackserve_rollout_transitions_total", model=name, to="promoted") == 1
    assert _metric("stackserve_rollout_state", model=name) == 2


def test_ray_app_shadows_to_the_challenger(server):
    """The session's Ray app serves shuttle-iforest with a shadow challenger (tests/integration/conftest.py)."""
    X = np.random.default_rng(3).normal(40, 5, size=(64, 9)).astype(np.float32)
    with AnomalyClient(server.address) as c:
        c.wait_ready(60)
        assert "shuttle-iforest@v1" not in {m.name for m in c.list_models()}
        for i in range(0, 64, 8):
            assert c.score(X[i : i + 8], model="shuttle-iforest").version == "1"
        last: dict = {}

        def reached():
            last["status"] = st = c.rollout()
            return st if st.challenger.total_requests >= 8 else None

        try:
            st = wait_until(reached, 30, "8 shadow copies reaching the Ray challenger", interval=0.1)
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}; last status {last.get('status')}") from None
    assert (st.active, st.mode, st.state, st.challenger.total_errors) == (True, "shadow", "running", 0)


def test_overload_and_client_deadlines_are_not_counted_as_challenger_faults(trained, settings, rows):
    """Shed load (RESOURCE_EXHAUSTED) and an expired client deadline say nothing about the challenger:
    the rollout must not count them as its errors (they would roll back a healthy challenger)."""
    from tests.integration.test_gateway_limits import HeldEndpoint

    name = "rollout-overload"
    _register_pair(settings, trained, name)
    cfg = _settings(settings, name, "canary", {}, canary_share=1.0)
    cfg.coalescing.max_batch_events = 8
    cfg.coalescing.max_queue_events = 16
    cfg.coalescing.max_inflight_batches = 1

    async def main():
        endpoint = HeldEndpoint(local_anomaly_endpoint(cfg))
        gw = await start_gateway(cfg, endpoint)
        await gw.wait_ready(30)
        rollout = gw.anomaly.scoring.rollout.controller
        X = rows[:ROWS_PER_REQUEST]
        async with AsyncAnomalyClient(f"127.0.0.1:{gw.port}") as c:
            first = asyncio.create_task(c.score(X, model=name))
            await poll_async(lambda: endpoint.calls >= 1, 10, "first call reached the endpoint", interval=0.005)
            queued = asyncio.create_task(c.score(X, model=name))  # 8 of 16 queued rows
            await poll_async(lambda: gw.anomaly.scoring.coalescer.queued_rows >= 8, 10, "8 rows queued",
                             interval=0.005)
            codes = []
            for batch, timeout in ((X, 0.2), (rows[:9], 30)):  # expires in the queue; then no room for 9 rows
                try:
                    await c.score(batch, model=name, timeout=timeout)
                except grpc.aio.AioRpcError as exc:
                    codes.append(exc.code())
            endpoint.release.set()
            await asyncio.gather(first, queued)
        snap = rollout.snapshot()
        await gw.stop()
        return codes, snap

    codes, snap = asyncio.run(main())
    assert codes == [grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert snap.challenger.total_errors == 0 and snap.champion.total_errors == 0
    assert snap.challenger.total_requests == 2  # the two that were answered
