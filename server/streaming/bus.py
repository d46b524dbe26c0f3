"""Stream and subject names, the JetStream streams the consumer and the publisher create, and connecting.

Three streams, file storage: events in (``EVENTS``: ``events.>``), scores out (``SCORES``:
``scores.>``), dead letters (``EVENTS_DLQ``: ``dlq.>``). Each has a duplicate window: a publish that
carries a ``Nats-Msg-Id`` header already seen in the window is stored once, which makes the
publisher's retries and the consumer's re-publishes after a redelivery idempotent on the broker too.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

#: JetStream drops a publish whose Nats-Msg-Id it has seen within this window.
DUPLICATE_WINDOW_S = 120.0


@dataclass(frozen=True, slots=True)
class BusNames:
    """Where events come from and where scores and dead letters go."""

    events_stream: str = "EVENTS"
    events_subject: str = "events.in"
    scores_stream: str = "SCORES"
    scores_subject: str = "scores.out"
    dlq_stream: str = "EVENTS_DLQ"
    dlq_subject: str = "dlq.events"
    durable: str = "stackserve-scorer"


async def ensure_streams(js, names: BusNames) -> None:
    """Create the three streams unless they exist (idempotent: every process calls it at start)."""
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    for stream, subject in ((names.events_stream, names.events_subject),
                            (names.scores_stream, names.scores_subject),
                            (names.dlq_stream, names.dlq_subject)):
        try:
            await js.stream_info(stream)
            continue
        except NotFoundError:
            pass
        await js.add_stream(StreamConfig(name=stream, subjects=[subject], storage=StorageType.FILE,
                                         duplicate_window=DUPLICATE_WINDOW_S))


async def connect(url: str, timeout_s: float):
    """Connect, retrying until ``timeout_s`` (the broker may still be starting or restarting); once
    connected the client reconnects by itself, forever."""
    import nats

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2, connect_timeout=2)
        except Exception as exc:  # nats raises several kinds for "not there yet"
            if time.monotonic() >= deadline:
                raise ConnectionError(f"no NATS broker at {url} after {timeout_s:g} s: {exc}") from exc
            await asyncio.sleep(0.2)
