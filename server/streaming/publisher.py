"""Publishing events onto the bus: a replay at a fixed rate, each publish confirmed by JetStream.

Why confirmed publishes (``js.publish`` waits for the stream's ack) with a ``Nats-Msg-Id`` of the event
id: a publisher that retries after a broker hiccup must not store an event twice, and one that
returns must know its events are stored. The send time of each event is returned, so the benchmark
measures published -> scored in the sink from the moment a producer handed it over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from server.streaming.bus import BusNames, connect, ensure_streams

#: Rate control ticks: each tick publishes what the rate allows since the start, then sleeps.
TICK_S = 0.01


async def publish_messages(js, names: BusNames, messages: Sequence[tuple[str, bytes]], rate: float | None = None,
                           chunk: int = 256, retries: int = 50) -> dict[str, float]:
    """Publish ``(event_id, message)`` pairs in order, at ``rate`` per second (as fast as confirmed
    publishes go when ``None``); returns each event id's wall-clock send time (``time.time()``).

    A chunk whose publish fails (the broker restarting) is retried whole: the msg ids make that safe."""
    sent: dict[str, float] = {}
    start = time.monotonic()
    i = 0
    while i < len(messages):
        if rate:
            due = min(len(messages), int((time.monotonic() - start) * rate) + 1)
            if due <= i:
                await asyncio.sleep(TICK_S)
                continue
            end = min(due, i + chunk)
        else:
            end = min(len(messages), i + chunk)
        part = messages[i:end]
        for attempt in range(retries):
            now = time.time()
            try:
                await asyncio.gather(*(js.publish(names.events_subject, data, headers={"Nats-Msg-Id": eid})
                                       for eid, data in part))
                break
            except Exception:  # any bus failure: retry the chunk (ids make it idempotent)
                if attempt == retries - 1:
                    raise
                await asyncio.sleep(0.2)
        for eid, _ in part:
            sent.setdefault(eid, now)
        i = end
    return sent


async def publish(url: str, names: BusNames, messages: Sequence[tuple[str, bytes]], rate: float | None = None,
                  connect_timeout_s: float = 30.0) -> dict[str, float]:
    """Connect, create the streams if needed, publish, close."""
    nc = await connect(url, connect_timeout_s)
    try:
        js = nc.jetstream()
        await ensure_streams(js, names)
        return await publish_messages(js, names, messages, rate)
    finally:
        await nc.close()
