"""`pipeline stream --address`: bus events scored through a real gateway (in this process, no Ray)
give the same scores as the in-process scorer, and the consumer stops by itself once it has no lag."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from server.anomaly.scorer import load_scorer
from server.pipeline.replay import shuttle_events
from server.streaming.bus import BusNames
from server.streaming.consumer import StreamConsumer, StreamOptions
from server.streaming.events import frame_events
from server.streaming.metrics import StreamMetrics
from server.streaming.nats_server import NatsServer
from server.streaming.publisher import publish
from server.streaming.scoring import GatewayScorer
from server.streaming.sink import ScoreSink, read_scores
from tests.support.in_process_gateway import Gateway

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(trained, settings):
    from server.config import load_settings

    cfg = load_settings(None, data_dir=str(settings.data_dir), gateway={"port": 0, "metrics_port": 0,
                        "openai_port": None}, llm={"enabled": False}, rag={"enabled": False})
    g = Gateway(cfg, None)
    yield f"127.0.0.1:{g.gw.port}"
    g.close()


@pytest.mark.timeout(300)
def test_events_scored_through_the_gateway_equal_the_in_process_scorer(gateway, settings, tmp_path):
    events = shuttle_events(800, entities=16)
    names = BusNames()
    with NatsServer(tmp_path / "nats") as broker:
        asyncio.run(publish(broker.url, names, frame_events(events.to_dict("records"), "event_id", "device", "ts")))
        sink = ScoreSink(tmp_path / "scores.sqlite")

        async def consume() -> None:
            scorer = await GatewayScorer(gateway, "shuttle-rf").start()
            try:
                options = StreamOptions(url=broker.url, names=names, batch=200, idle_exit_s=0.5)
                await StreamConsumer(options, scorer, sink, StreamMetrics("EVENTS", names.durable), None,
                                     None).run(asyncio.Event())
            finally:
                await scorer.close()

        asyncio.run(consume())
        sink.close()
    got = {e: s for e, s, _, _ in read_scores(tmp_path / "scores.sqlite")}
    assert sorted(got) == sorted(events["event_id"])
    scorer = load_scorer(settings)
    columns = list(scorer.model("shuttle-rf").card.feature_names)
    want = scorer.score("shuttle-rf", events[columns].to_numpy(dtype=np.float32)).scores
    np.testing.assert_allclose([got[e] for e in events["event_id"]], want, rtol=1e-6, atol=1e-9)
