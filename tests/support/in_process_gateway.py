"""A real gateway (``start_gateway``) on its own event-loop thread in the test's process: the sync
clients block, so the gateway's loop cannot be the test's."""

from __future__ import annotations

import asyncio
import threading

from server.gateway.server import start_gateway
from server.placement import local_anomaly_endpoint


class Gateway:
    """The secured gateway on its own event loop thread (the sync clients block)."""

    def __init__(self, cfg, llm) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.gw = self.run(self._start(cfg, llm), 240)

    async def _start(self, cfg, llm):
        gw = await start_gateway(cfg, local_anomaly_endpoint(cfg), llm, None)
        await gw.wait_ready(180)
        return gw

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.run(self.gw.stop(), 60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def gateway_settings(data_dir, **overrides):
    """Settings for an in-process gateway: free ports (gRPC, metrics, the OpenAI API), the test LLM,
    no retrieval unless ``rag=`` is given; ``overrides`` (``security=...``) on top."""
    from server.config import load_settings
    from tests.support.llm_fixtures import LLM_TEST_CONFIG

    overrides = {"rag": {"enabled": False}, **overrides}
    return load_settings(None, data_dir=str(data_dir), gateway={"port": 0, "metrics_port": 0, "openai_port": 0},
                         llm=LLM_TEST_CONFIG, **overrides)
