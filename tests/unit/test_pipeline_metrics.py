"""The pipeline's counters persist across commands, and two commands saving at once (an ingest
during a run) both keep what they counted."""

from __future__ import annotations

from server.pipeline.metrics import PipelineMetrics


def test_counters_add_up_across_processes_that_overlap(tmp_path):
    path = tmp_path / "metrics.prom"
    ingest, run = PipelineMetrics(), PipelineMetrics()
    ingest.load(path)
    run.load(path)  # both started from the same (empty) totals
    ingest.rows.labels(table="bronze").inc(5)
    ingest.empty_drops.inc()
    run.rows.labels(table="bronze").inc(7)
    run.quarantined.labels(expectation="freshness:ts").inc(2)
    ingest.save(path)
    run.save(path)
    ingest.rows.labels(table="bronze").inc(1)
    ingest.save(path)  # only the new increment is added
    later = PipelineMetrics()
    later.load(path)
    assert later.value("stackserve_pipeline_rows_written_total", table="bronze") == 13
    assert later.value("stackserve_pipeline_empty_drops_total") == 1
    assert later.value("stackserve_pipeline_quarantined_rows_total", expectation="freshness:ts") == 2
    assert "# TYPE stackserve_pipeline_schema_breaks_total counter" in path.read_text()
