"""Gateway limits on a real gRPC server in this process (no Ray): load shedding and deadlines.

The scorer is the real one loaded from the session's MLflow store; the endpoint in
front of it is held on an event so the queue can be filled deterministically.
"""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from server.client import AsyncAnomalyClient, score_request
from server.config import load_settings
from server.gateway.server import start_gateway
from server.placement import local_anomaly_endpoint
from tests.support.waiting import poll_async

pytestmark = pytest.mark.integration


class HeldEndpoint:
    """The real local endpoint, but each score waits until the test releases it."""

    def __init__(self, inner):
        self.inner = inner
        self.release = asyncio.Event()
        self.calls = 0

    async def models(self):
        return await self.inner.models()

    async def score(self, model, X, request_ids):
        self.calls += 1
        await self.release.wait()
        return await self.inner.score(model, X, request_ids)


def test_queue_full_sheds_load_and_deadlines_are_honoured(trained, settings):
    cfg = load_settings(
        None,
        data_dir=str(settings.data_dir),
        gateway={"port": 0, "metrics_port": 0, "openai_port": 0},
        coalescing={"max_batch_events": 4, "max_wait_ms": 0, "max_queue_events": 8, "max_inflight_batches": 1},
    )

    async def main():
        endpoint = HeldEndpoint(local_anomaly_endpoint(cfg))
        gw = await start_gateway(cfg, endpoint)
        await gw.wait_ready(30)
        X = np.ones((4, 9), dtype=np.float32)
        async with AsyncAnomalyClient(f"127.0.0.1:{gw.port}") as c:
            first = asyncio.create_task(c.score(X, model="shuttle-rf"))
            await poll_async(lambda: endpoint.calls >= 1, 10, "first call reached the endpoint", interval=0.005)
            queued = [asyncio.create_task(c.score(X, model="shuttle-rf")) for _ in range(2)]
            await poll_async(lambda: gw.anomaly.scoring.coalescer.queued_rows >= 8, 10, "8 rows queued",
                             interval=0.005)
            with pytest.raises(grpc.aio.AioRpcError) as shed:
                await c.score(X[:1], model="shuttle-rf")
            assert shed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "limit 8" in shed.value.details()
            endpoint.release.set()
            done = await asyncio.gather(first, *queued)
            assert all(r.scores.shape == (4,) for r in done)

            endpoint.release.clear()
            blocker = asyncio.create_task(c.score(X, model="shuttle-rf"))
            await poll_async(lambda: endpoint.calls >= 4, 10, "4 calls reached the endpoint", interval=0.005)
            with pytest.raises(grpc.aio.AioRpcError) as late:
                await c.score(X, model="shuttle-rf", timeout=0.2)
            assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            calls_before = endpoint.calls
            endpoint.release.set()
            await blocker
            assert gw.anomaly.scoring.coalescer.queued_rows == 0
            assert endpoint.calls == calls_before  # the expired request never reached the scorer
        await gw.stop()

    asyncio.run(main())


def test_unavailable_while_warming_up(settings):
    cfg = load_settings(None, data_dir=str(settings.data_dir), gateway={"port": 0, "metrics_port": 0, "openai_port": 0})

    class NeverReady:
        async def models(self):
            raise RuntimeError("still starting")

        async def score(self, model, X, request_ids):
            raise AssertionError("must not be called")

    async def main():
        gw = await start_gateway(cfg, NeverReady())
        async with AsyncAnomalyClient(f"127.0.0.1:{gw.port}") as c:
            assert await c.health("stackserve.v1.AnomalyService") == "NOT_SERVING"
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await c.score(np.ones((1, 9)))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        await gw.stop()

    asyncio.run(main())


STREAM = "shuttle-rf-stream"


def _limits_cfg(settings):
    return load_settings(
        None,
        data_dir=str(settings.data_dir),
        gateway={"port": 0, "metrics_port": 0, "openai_port": 0},
        coalescing={"max_batch_events": 4, "max_wait_ms": 0, "max_queue_events": 8, "max_inflight_batches": 1},
    )


def _probe(gw) -> np.ndarray:
    """The stream state as features of one probe event per entity (without committing it)."""
    state = gw.anomaly.scoring.streams[STREAM]
    keys = ["u", "v"]
    out, pending = state.transform_pending(keys, np.full((2, 9), 7.0))
    pending.rollback()
    return out


def test_retries_after_shed_load_and_deadlines_give_undisturbed_features(trained, settings):
    """Requests answered RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED leave the per-entity windows as
    they were, so retrying them gives exactly the scores (and state) of an undisturbed run."""
    cfg = _limits_cfg(settings)
    rng = np.random.default_rng(3)
    events = [rng.normal(50, 10, size=(2, 9)).astype(np.float32) for _ in range(6)]

    async def undisturbed():
        gw = await start_gateway(cfg, local_anomaly_endpoint(cfg))
        await gw.wait_ready(30)
        async with AsyncAnomalyClient(f"127.0.0.1:{gw.port}") as c:
            scores = [(await c.score(X, model=STREAM, entity_keys=["u", "v"])).scores for X in events]
        probe = _probe(gw)
        await gw.stop()
        return scores, probe

    async def disturbed():
        endpoint = HeldEndpoint(local_anomaly_endpoint(cfg))
        gw = await start_gateway(cfg, endpoint)
        await gw.wait_ready(30)
        scores = []
        async with AsyncAnomalyClient(f"127.0.0.1:{gw.port}") as c:
            first = asyncio.create_task(c.score(events[0], model=STREAM, entity_keys=["u", "v"]))
            await poll_async(lambda: endpoint.calls >= 1, 10, "first call reached the endpoint", interval=0.005)
            # fill the queue with another model's rows, then event 1 is shed and then expires
            filler = [asyncio.create_task(c.score(np.ones((4, 9)), model="shuttle-rf")) for _ in range(2)]
            await poll_async(lambda: gw.anomaly.scoring.coalescer.queued_rows >= 8, 10, "8 rows queued",
                             interval=0.005)
            with pytest.raises(grpc.aio.AioRpcError) as shed:
                await c.score(events[1], model=STREAM, entity_keys=["u", "v"])
            assert shed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            endpoint.release.set()
            scores.append((await first).scores)
            await asyncio.gather(*filler)
            endpoint.release.clear()
            blocker = asyncio.create_task(c.score(np.ones((4, 9)), model="shuttle-rf"))
            await poll_async(lambda: endpoint.calls >= 4, 10, "4 calls reached the endpoint", interval=0.005)
            with pytest.raises(grpc.aio.AioRpcError) as late:
                await c.score(events[1], model=STREAM, entity_keys=["u", "v"], timeout=0.2)
            assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            endpoint.release.set()
            await blocker
            # a stream whose messages were read ahead, then abandoned by the client
            endpoint.release.clear()
            calls = endpoint.calls
            call = c.stub.ScoreStream(
                iter([score_request(events[1], STREAM, ["u", "v"]), score_request(events[2], STREAM, ["u", "v"])])
            )
            await poll_async(lambda: endpoint.calls > calls, 10, "the stream's first message reached the endpoint",
                             interval=0.005)
            call.cancel()
            state = gw.anomaly.scoring.streams[STREAM]
            await poll_async(lambda: state.pending_updates == 0, 10, "the abandoned stream's updates rolled back",
                             interval=0.005)
            assert state.pending_updates == 0
            endpoint.release.set()
            for X in events[1:]:  # the retries
                scores.append((await c.score(X, model=STREAM, entity_keys=["u", "v"])).scores)
        probe = _probe(gw)
        await gw.stop()
        return scores, probe

    want_scores, want_probe = asyncio.run(undisturbed())
    got_scores, got_probe = asyncio.run(disturbed())
    np.testing.assert_array_equal(np.concatenate(got_scores), np.concatenate(want_scores))
    np.testing.assert_array_equal(got_probe, want_probe)


def test_request_that_can_never_fit_gets_a_permanent_error(trained, settings):
    cfg = _limits_cfg(settings)

    async def main():
        gw = await start_gateway(cfg, local_anomaly_endpoint(cfg))
        await gw.wait_ready(30)
        async with AsyncAnomalyClient(f"127.0.0.1:{gw.port}") as c:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await c.score(np.ones((9, 9)), model="shuttle-rf")
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "features:" in err.value.details() and "limit of 8" in err.value.details()
            assert "retry" not in err.value.details()
        await gw.stop()

    asyncio.run(main())
