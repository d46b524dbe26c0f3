"""Shutdown of the shared session server, as a supervisor or a terminal's Ctrl-C does it.

SIGTERM to the server's whole process group while a stream is in flight: the stream is drained (all
its tokens, finish reason ``length``), its access-log line is written, the server exits 0 within
Kubernetes' 30 s grace period. This test stops the server the whole session shares, so it is
marked ``stops_server`` and sorted after every other test (tests/conftest.py).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from server.client import LLMClient

pytestmark = [pytest.mark.integration, pytest.mark.stops_server]


def _generate(address: str, request_id: str, first: threading.Event) -> tuple[int, str]:
    """A greedy stream of 24 tokens; ``first`` is set once its first piece arrived."""
    tokens, finish = 0, ""
    with LLMClient(address) as c:
        for piece in c.generate("Count: 1, 2, 3,", max_tokens=24, ignore_eos=True, temperature=0,
                                request_id=request_id):
            tokens += len(piece.token_ids)
            finish = piece.finish_reason or finish
            first.set()
    return tokens, finish


def test_sigterm_drains_the_stream_in_flight_logs_it_and_exits_zero(server):
    first = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        stream = pool.submit(_generate, server.address, "shutdown-drain-1", first)
        assert first.wait(60), "the stream never started"
        started = time.monotonic()
        os.killpg(server.process.pid, signal.SIGTERM)
        code = server.stop(timeout=60)
        took = time.monotonic() - started
        tokens, finish = stream.result(timeout=30)
    killed = " (killed: not stopped within 60s of SIGTERM)" if code == -signal.SIGKILL else ""
    assert code == 0, f"server exited with {code}{killed}:\n{server.log_tail(3000)}"
    assert took < 30, f"shutdown took {took:.1f} s"
    assert (tokens, finish) == (24, "length"), (tokens, finish)  # drained, not cut
    assert '"request_id": "shutdown-drain-1"' in server.log(), "its access-log line was lost"
