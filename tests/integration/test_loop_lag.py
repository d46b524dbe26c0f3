"""Nothing blocks the gateway's event loop under load: every gRPC call, HTTP request and stream
chunk waits behind whatever holds it. The session server (Ray replicas for the anomaly models and
the LLM, the gateway in its own process) takes mixed load for a while (small Score requests scored
in the gateway, larger ones coalesced into Ray, LLM streams over gRPC, OpenAI HTTP completions), and
the loop-lag probe (``stackserve_event_loop_lag_seconds``, scraped) bounds what it saw in that window:
at most 1% of its 10 ms ticks over 50 ms, at most 2 over 250 ms. Before the scoring thread and the
access-log writer thread, a 256-event Score scored inline or a log rotation held the loop outright.
On 2 shared cores the loop thread also waits for the CPU and the GIL (the test's own client threads,
Ray's replicas and core-worker threads compete for both): the probe's watchdog logs where the loop
thread was during each stall, and the samples seen in this test were in cheap code (a ``.all()`` on
4 rows, a handle call), i.e. waiting for the CPU, not held by our code. The long ones (250-400 ms)
were in Ray Serve's router, which runs on the gateway's loop (``RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP=0``,
for throughput) and records its metrics synchronously there."""

from __future__ import annotations

import re
import threading
import time
import urllib.request

import numpy as np
import openai
import pytest

from server.client import AnomalyClient, LLMClient

pytestmark = pytest.mark.integration
STALL_S = 0.05
LOAD_S = 15.0
def _lag(metrics_url: str) -> tuple[float, float, float]:
    """(samples, samples at or under 50 ms, at or under 250 ms) of the gateway loop's lag histogram."""
    body = urllib.request.urlopen(metrics_url, timeout=10).read().decode()

    def bucket(le: str) -> float:
        found = re.search(rf'stackserve_event_loop_lag_seconds_bucket\{{le="{le}",loop="gateway"\}} (\S+)', body)
        assert found, "the gateway exports no loop-lag histogram"
        return float(found[1])

    count = re.search(r'stackserve_event_loop_lag_seconds_count\{loop="gateway"\} (\S+)', body)
    assert count, "the gateway exports no loop-lag histogram"
    return float(count[1]), bucket("0.05"), bucket("0.25")


def test_the_gateway_loop_never_stalls_over_50ms_under_mixed_load(server):
    stop = threading.Event()
    done: dict[str, int] = {"small": 0, "large": 0, "stream": 0, "http": 0}
    errors: list[BaseException] = []

    def loop_of(name: str, call) -> threading.Thread:
        def run() -> None:
            try:
                while not stop.is_set():
                    call()
                    done[name] += 1
            except BaseException as exc:
                errors.append(exc)

        return threading.Thread(target=run, name=name, daemon=True)

    rng = np.random.default_rng(0)
    small, large = rng.normal(size=(4, 9)).astype(np.float32), rng.normal(size=(256, 9)).astype(np.float32)
    anomaly = AnomalyClient(server.address)
    llm = LLMClient(server.address)
    http = openai.OpenAI(base_url=server.info["openai"], api_key="none", max_retries=0)
    threads = [
        loop_of("small", lambda: anomaly.score(small, model="shuttle-rf")),
        loop_of("large", lambda: anomaly.score(large, model="shuttle-rf")),
        loop_of("stream", lambda: list(llm.generate("Count: 1, 2,", max_tokens=16, ignore_eos=True))),
        loop_of("http", lambda: http.completions.create(model=server.info["llm"], prompt="Hello", max_tokens=8)),
    ]
    samples0, under0, long0 = _lag(server.metrics_url)
    for t in threads:
        t.start()
    time.sleep(LOAD_S)
    stop.set()
    for t in threads:
        t.join(60)
    samples, under, long = _lag(server.metrics_url)
    anomaly.close()
    llm.close()
    assert not errors, errors[:3]
    assert all(n > 0 for n in done.values()), done
    window = samples - samples0
    stalls = window - (under - under0)
    assert window > LOAD_S * 20, f"only {window:.0f} lag samples in {LOAD_S:.0f} s: the probe itself starved"
    assert window - (long - long0) <= 2, f"the loop was held over 250 ms {window - (long - long0):.0f} times ({done})"
    assert stalls <= 0.01 * window, f"{stalls:.0f} of {window:.0f} loop-lag samples over 50 ms under load ({done})"
