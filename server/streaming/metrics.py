"""The consumer's metrics: bus lag as gauges, what happened to each event as counters.

Why like the pipeline's (``server/pipeline/metrics.py``): the consumer runs beside the pipeline's
short commands and is read the same way, from a node-exporter textfile (``bus.prom`` in the pipeline
dir, rewritten atomically every second and at exit); counters continue from the file after a
restart. A long-running consumer can also serve them over HTTP (``--metrics-port``), for a
Prometheus that scrapes it directly. The lag is JetStream's own count for the durable consumer:
``pending`` messages not yet delivered to it, ``ack_pending`` delivered and not yet acked.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

OUTCOMES = ("scored", "already_scored", "dead_lettered")


class StreamMetrics:
    def __init__(self, stream: str, consumer: str) -> None:
        self.registry = r = CollectorRegistry()
        labels = {"stream": stream, "consumer": consumer}
        self.pending = Gauge("stackserve_pipeline_bus_pending_messages", "messages in the stream not yet "
                             "delivered to the durable consumer (its lag)", list(labels), registry=r).labels(**labels)
        self.ack_pending = Gauge("stackserve_pipeline_bus_ack_pending_messages", "messages delivered to the "
                                 "consumer and not yet acked", list(labels), registry=r).labels(**labels)
        self._events = Counter("stackserve_pipeline_bus_events", "events consumed from the bus, by outcome "
                               "(already_scored: a redelivery the score sink absorbed)", ["outcome"], registry=r)
        self.events = {o: self._events.labels(outcome=o) for o in OUTCOMES}
        self.batch_seconds = Histogram("stackserve_pipeline_bus_batch_seconds", "one fetched batch: land in bronze, "
                                       "score, publish, write the sink, ack",
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)

    def load(self, path: Path) -> None:
        """Continue the counters from the file an earlier run of this consumer wrote."""
        try:
            text = path.read_text()
        except OSError:
            return
        for family in text_string_to_metric_families(text):
            if family.name != "stackserve_pipeline_bus_events":
                continue
            for s in family.samples:
                outcome = s.labels.get("outcome")
                if s.name.endswith("_total") and outcome in self.events and s.value > 0:
                    self.events[outcome].inc(s.value)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(os.fspath(path), self.registry)  # a temporary file renamed: readers see it whole

    def serve(self, port: int) -> None:
        from prometheus_client import start_http_server

        start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def value(self, outcome: str) -> float:
        with suppress(KeyError):
            return float(self.events[outcome]._value.get())
        return 0.0
