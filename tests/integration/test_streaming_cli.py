"""`stackserve pipeline broker` and `pipeline publish` as users run them: the broker from the wheel in
the foreground (the CLI execs it, so a signal stops it), events published from a JSON Lines drop,
one stream message each, and a second publish of the same events stored once (Nats-Msg-Id)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from server.pipeline.replay import shuttle_events, write_events
from server.streaming.bus import BusNames, connect
from server.streaming.nats_server import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def cli(data_dir, *args: str) -> list[str]:
    return [sys.executable, "-m", "server.cli", "--data-dir", str(data_dir), "pipeline", *args]


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz?js-enabled-only=true", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


async def stored(url: str) -> int:
    nc = await connect(url, 10)
    try:
        return (await nc.jetstream().stream_info(BusNames().events_stream)).state.messages
    finally:
        await nc.close()


def test_broker_and_publish_commands(tmp_path):
    port, monitor = free_port(), free_port()
    broker = subprocess.Popen(cli(tmp_path, "broker", "--port", str(port), "--monitor-port", str(monitor)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: healthy(monitor) or broker.poll() is not None, 30, "the broker serves JetStream")
        assert broker.poll() is None, broker.stderr.read().decode()
        assert (tmp_path / "pipeline" / "nats").is_dir()  # the default store: nats/ in the pipeline dir
        drop = write_events(shuttle_events(40, entities=4), tmp_path / "events.jsonl")
        url = f"nats://127.0.0.1:{port}"
        for _ in range(2):
            done = subprocess.run(cli(tmp_path, "publish", "--url", url, "--data", str(drop)), capture_output=True,
                                  text=True, timeout=120, env=os.environ)
            assert done.returncode == 0, done.stderr
            assert "published 40 events" in done.stderr
        assert asyncio.run(stored(url)) == 40  # the second publish was deduplicated by event id
        missing = subprocess.run(cli(tmp_path, "publish", "--url", url, "--data", str(tmp_path / "nope.csv")),
                                 capture_output=True, text=True, timeout=120)
        assert missing.returncode == 2 and "no such file" in missing.stderr
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=30)
