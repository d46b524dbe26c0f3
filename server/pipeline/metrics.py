"""The pipeline's Prometheus counters, kept across runs in a text file under the pipeline dir.

Why a file: ``stackserve pipeline`` commands are short processes that no Prometheus scrapes; the
file is in the node exporter's textfile format (point its ``--collector.textfile.directory`` at the
pipeline dir), and each command starts from the totals the last one wrote, so the counters count
across runs. A new registry per process keeps them apart from the gateway's metrics.
"""

from __future__ import annotations

import os
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

    def load(self, path: Path) -> None:
        """Start from the totals in ``path`` (a missing or unreadable file starts from zero)."""
        try:
            text = path.read_text()
        except OSError:
            return
        for family in text_string_to_metric_families(text):
            counter = self._by_name.get(family.name)
            if counter is None:
                continue
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.value > 0:
                    (counter.labels(**sample.labels) if sample.labels else counter).inc(sample.value)

    def save(self, path: Path) -> None:
        """Write atomically (write_to_textfile renames a temporary file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(os.fspath(path), self.registry)

    def value(self, name: str, **labels: str) -> float:
        """One series' value (tests and status read it)."""
        v = self.registry.get_sample_value(name, labels or None)
        return float(v or 0.0)
