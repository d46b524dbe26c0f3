"""The pipeline's Prometheus counters, kept across runs in a text file under the pipeline dir.

Why a file: ``stackserve pipeline`` commands are short processes that no Prometheus scrapes; the
file is in the node exporter's textfile format (point its ``--collector.textfile.directory`` at the
pipeline dir), and each command adds what it counted to the file's totals (under a lock, so
overlapping commands keep both counts): the counters count across runs. A new registry per
process keeps them apart from the gateway's metrics.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager, suppress
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families


class PipelineMetrics:
    """Counters of one pipeline; ``load`` adds what earlier runs counted, ``save`` writes them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.ingested = Counter("stackserve_pipeline_ingested_events", "events landed in bronze", ["format"],
                                registry=r)
        self.empty_drops = Counter("stackserve_pipeline_empty_drops", "drops with no rows (nothing landed)",
                                   registry=r)
        self.rows = Counter("stackserve_pipeline_rows_written", "rows written by a stage", ["table"], registry=r)
        self.quarantined = Counter("stackserve_pipeline_quarantined_rows", "rows quarantined, by failed expectation",
                                   ["expectation"], registry=r)
        self.schema_breaks = Counter("stackserve_pipeline_schema_breaks", "batches quarantined whole by a schema "
                                     "break, by column", ["column"], registry=r)
        self.duplicates = Counter("stackserve_pipeline_duplicate_events", "events dropped as exact duplicates of an "
                                  "event id already seen", registry=r)
        self._by_name = {c._name: c for c in (self.ingested, self.empty_drops, self.rows, self.quarantined,
                                               self.schema_breaks, self.duplicates)}

        self._saved: dict[tuple, float] = {}  # what this process has already added to the file

    def _samples(self) -> dict[tuple, float]:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in self.registry.collect() for s in family.samples if s.name.endswith("_total")}

    def _add(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            counter = self._by_name.get(family.name)
            if counter is None:
                continue
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.value > 0:
                    (counter.labels(**sample.labels) if sample.labels else counter).inc(sample.value)

    def load(self, path: Path) -> None:
        """Start from the totals in ``path`` (a missing or unreadable file starts from zero)."""
        try:
            self._add(path.read_text())
        except OSError:
            return
        self._saved = self._samples()

    def save(self, path: Path) -> None:
        """Add what this process counted since its last save to the file's current totals, under a
        lock: an ``ingest`` and a ``run`` at the same time both keep their counts."""
        path.parent.mkdir(parents=True, exist_ok=True)
        mine = self._samples()
        merged = PipelineMetrics()
        with _locked(path.with_suffix(".lock")):
            with suppress(OSError):
                merged._add(path.read_text())
            for (name, labels), value in mine.items():
                delta = value - self._saved.get((name, labels), 0.0)
                if delta > 0:
                    counter = merged._by_name[name.removesuffix("_total")]
                    (counter.labels(**dict(labels)) if labels else counter).inc(delta)
            write_to_textfile(os.fspath(path), merged.registry)  # atomic: a temporary file renamed
        self._saved = mine

    def value(self, name: str, **labels: str) -> float:
        """One series' value (tests and status read it)."""
        v = self.registry.get_sample_value(name, labels or None)
        return float(v or 0.0)


@contextmanager
def _locked(path: Path):
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
