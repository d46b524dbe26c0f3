"""The durable consumer: JetStream pull consumer with explicit acks, one fetched batch at a time.

Per batch, in this order (the order is the guarantee):

1. decode every message; a poison message (``events.PoisonMessage``) is published to the dead-letter
   subject with its reason and acked: it never blocks the stream;
2. drop the events the score sink already has (a redelivery after a crash: counted, not re-scored);
3. land the rest in bronze (one Delta commit, offsets = stream sequences) and, meanwhile,
4. score them (gateway or in process) and publish the scores to the output subject, each with a
   ``Nats-Msg-Id`` of its event id (JetStream drops a re-publish within its duplicate window);
5. upsert them into the score sink (keyed by event id, one transaction);
6. ack every message of the batch.

A crash anywhere before 6 leaves the batch unacked: JetStream redelivers it after ``ack_wait`` and
steps 2-5 make the second pass harmless. The durable consumer (the group's name) lives in the
broker's file store, so a broker killed and restarted resumes it where the acks left it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from server.streaming.bus import BusNames, connect, ensure_streams
from server.streaming.events import BusEvent, PoisonMessage, bronze_payload, decode_event
from server.streaming.metrics import StreamMetrics
from server.streaming.scoring import EventScorer
from server.streaming.sink import ScoreRow, ScoreSink

log = logging.getLogger("stackserve.streaming")

#: Test hook for the chaos drill: ``after_sink:N`` SIGKILLs the consumer after its N-th sink write,
#: before the acks (the window that makes the broker redeliver what the sink already holds).
FAULT_ENV = "STACKSERVE_STREAM_FAULT"


@dataclass(slots=True)
class StreamOptions:
    url: str
    names: BusNames = field(default_factory=BusNames)
    batch: int = 2000  # per fetch and per bronze commit: the commit, not the event, is what costs
    fetch_timeout_s: float = 0.25
    ack_wait_s: float = 30.0
    idle_exit_s: float | None = None  # stop once the consumer has no lag for this long (scripts, the demo)
    connect_timeout_s: float = 60.0
    metrics_every_s: float = 1.0


@dataclass(slots=True)
class BronzeTarget:
    """Where and how events land in bronze: the pipeline layout, the spec's role columns, its counters."""

    layout: object
    event_id: str
    entity: str
    timestamp: str
    metrics: object  # PipelineMetrics
    stream: str = "EVENTS"

    def land(self, events: list[BusEvent], seqs: list[int]) -> None:
        from server.pipeline.bronze import land_payloads

        payload = [bronze_payload(e, self.event_id, self.entity, self.timestamp) for e in events]
        land_payloads(self.layout, payload, self.metrics, source="nats", file=f"nats:{self.stream}", fmt="nats",
                      offsets=seqs)

    def save_metrics(self) -> None:
        self.metrics.save(self.layout.metrics)


class StreamConsumer:
    def __init__(self, options: StreamOptions, scorer: EventScorer, sink: ScoreSink, metrics: StreamMetrics,
                 metrics_path: Path | None, bronze: BronzeTarget | None) -> None:
        self.o = options
        self.scorer = scorer
        self.sink = sink
        self.metrics = metrics
        self.metrics_path = metrics_path
        self.bronze = bronze
        self.sink_writes = 0
        self._fault = _parse_fault(os.environ.get(FAULT_ENV, ""))
        self._nc = None

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set (SIGTERM/SIGINT in the CLI) or the idle bound passes."""
        import nats.errors
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        names = self.o.names
        nc = self._nc = await connect(self.o.url, self.o.connect_timeout_s)
        js = nc.jetstream()
        sub = None
        last_metrics = 0.0
        idle_since = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    if sub is None:
                        await ensure_streams(js, names)
                        sub = await js.pull_subscribe(
                            names.events_subject, durable=names.durable, stream=names.events_stream,
                            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=self.o.ack_wait_s,
                                                  deliver_policy=DeliverPolicy.ALL,
                                                  max_ack_pending=max(1000, 4 * self.o.batch)))
                    try:
                        msgs = await sub.fetch(self.o.batch, timeout=self.o.fetch_timeout_s)
                    except TimeoutError:  # nothing to fetch (nats.errors.TimeoutError is one)
                        msgs = []
                    if msgs:
                        await self.handle(js, msgs)
                        idle_since = time.monotonic()
                    now = time.monotonic()
                    if now - last_metrics >= self.o.metrics_every_s or not msgs:
                        lag = await self.update_lag(sub)
                        last_metrics = now
                        if msgs or lag:
                            idle_since = now
                        elif self.o.idle_exit_s is not None and now - idle_since >= self.o.idle_exit_s:
                            log.info("no lag for %.1f s: stopping", self.o.idle_exit_s)
                            break
                except (TimeoutError, nats.errors.Error, OSError) as exc:
                    # the broker went away or is restarting: the client reconnects; try again shortly
                    log.warning("bus unavailable (%s: %s); retrying", type(exc).__name__, exc)
                    await asyncio.sleep(0.2)
        finally:
            self.save_metrics()
            await nc.close()

    async def update_lag(self, sub) -> int:
        info = await sub.consumer_info()
        self.metrics.pending.set(info.num_pending or 0)
        self.metrics.ack_pending.set(info.num_ack_pending or 0)
        self.save_metrics()
        return int((info.num_pending or 0) + (info.num_ack_pending or 0))

    def save_metrics(self) -> None:
        if self.metrics_path is not None:
            self.metrics.save(self.metrics_path)
        if self.bronze is not None:
            self.bronze.save_metrics()

    async def handle(self, js, msgs: list) -> None:
        started = time.perf_counter()
        names = self.o.names
        events: list[BusEvent] = []
        kept: list = []
        poison: list[tuple[object, str]] = []
        seen: set[str] = set()
        repeats = []
        for m in msgs:
            try:
                ev = decode_event(m.data, self.scorer.feature_names)
            except PoisonMessage as exc:
                poison.append((m, str(exc)))
                continue
            if ev.event_id in seen:  # one id twice in a batch (published twice outside the window)
                repeats.append(ev.event_id)
                continue
            seen.add(ev.event_id)
            events.append(ev)
            kept.append(m)
        for m, reason in poison:
            seq = m.metadata.sequence.stream
            await js.publish(names.dlq_subject, m.data, headers={
                "Nats-Msg-Id": f"dlq-{names.events_stream}-{seq}", "Stackserve-Reason": reason[:500],
                "Stackserve-Stream-Seq": str(seq), "Stackserve-Subject": m.subject})
            self.metrics.events["dead_lettered"].inc()
            log.warning("dead-lettered message %d: %s", seq, reason)
        known = self.sink.known([e.event_id for e in events])
        if known or repeats:
            self.sink.count_redelivered([*known, *repeats])
            self.metrics.events["already_scored"].inc(len(known) + len(repeats))
        fresh = [(e, m) for e, m in zip(events, kept, strict=True) if e.event_id not in known]
        if fresh:
            await self.score_and_sink(js, [e for e, _ in fresh], [m.metadata.sequence.stream for _, m in fresh])
        if self._fault is not None and self.sink_writes >= self._fault:
            os.kill(os.getpid(), signal.SIGKILL)  # the drill: scores written, acks never sent
        for m in msgs:
            await m.ack()
        await self._nc.flush()  # the acks leave now, not with the next fetch
        self.metrics.batch_seconds.observe(time.perf_counter() - started)

    async def score_and_sink(self, js, events: list[BusEvent], seqs: list[int]) -> None:
        # bronze's Delta commit runs on a thread (delta-rs releases the GIL) while the batch is scored
        # and its scores published: both are done before the sink write, and the acks after it
        landing = (asyncio.ensure_future(asyncio.to_thread(self.bronze.land, events, seqs))
                   if self.bronze is not None else None)
        try:
            X = np.array([e.values for e in events], dtype=np.float64)
            result = await self.scorer.score(X, [e.entity for e in events])
            rows = [ScoreRow(e.event_id, e.entity, e.ts, float(s), bool(a), result.model, result.version, seq)
                    for e, s, a, seq in zip(events, result.scores, result.is_anomaly, seqs, strict=True)]
            subject = self.o.names.scores_subject
            await asyncio.gather(*(js.publish(subject, _score_message(r), headers={"Nats-Msg-Id": r.event_id})
                                   for r in rows))
        finally:
            if landing is not None:
                await landing  # a failed landing raises here: no sink write, no ack, redelivery
        self.sink.write(rows)
        self.sink_writes += 1
        self.metrics.events["scored"].inc(len(rows))


def _score_message(r: ScoreRow) -> bytes:
    return json.dumps({"event_id": r.event_id, "entity": r.entity, "ts": r.ts, "score": r.score,
                       "is_anomaly": r.is_anomaly, "model": r.model, "model_version": r.model_version},
                      separators=(",", ":")).encode()


def _parse_fault(spec: str) -> int | None:
    if not spec:
        return None
    kind, _, n = spec.partition(":")
    if kind != "after_sink" or not n.isdigit():
        raise ValueError(f"{FAULT_ENV}={spec!r}: expected after_sink:N")
    return int(n)


def install_stop(stop: asyncio.Event) -> Callable[[], None]:
    """SIGTERM and SIGINT finish the batch in hand, then stop (its acks go out first)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return lambda: [loop.remove_signal_handler(s) for s in (signal.SIGTERM, signal.SIGINT)]
