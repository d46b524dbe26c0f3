"""Helpers for the pipeline tests: a pipeline on a temporary dir, drops written from frames, and
table contents in a comparable form."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from server.pipeline import tables
from server.pipeline.bronze import ingest_file
from server.pipeline.drops import read_drop
from server.pipeline.infer_spec import infer_spec
from server.pipeline.metrics import PipelineMetrics
from server.pipeline.replay import shuttle_events, write_events
from server.pipeline.runner import RunReport, run
from server.pipeline.spec import PipelineSpec, save_spec
from server.pipeline.tables import Layout

KEY = bytes(range(32))


class Pipe:
    """One pipeline under ``root``: spec inferred from ``sample``, drops numbered as written."""

    def __init__(self, root: Path, sample: pd.DataFrame, **infer_kw) -> None:
        self.root = root
        self.layout = Layout(root / "pipeline")
        self.metrics = PipelineMetrics()
        self._n = 0
        path = self.write(sample, "sample.csv")
        self.spec: PipelineSpec = infer_spec(read_drop(path), "device", "ts", label="anomaly", **infer_kw)
        save_spec(self.spec, self.layout.spec)

    def write(self, df: pd.DataFrame, name: str | None = None) -> Path:
        self._n += 1
        return write_events(df, self.root / "drops" / (name or f"drop{self._n:03d}.csv"))

    def ingest(self, df: pd.DataFrame, suffix: str = ".csv"):
        return ingest_file(self.layout, self.write(df, f"drop{self._n + 1:03d}{suffix}"), self.metrics)

    def saved_metrics(self) -> PipelineMetrics:
        """The counters the runs wrote to the pipeline's metrics file."""
        m = PipelineMetrics()
        m.load(self.layout.metrics)
        return m

    def run(self) -> RunReport:
        return run(self.layout, self.spec, KEY)


def events(rows: int, offset: int = 0, entities: int = 8) -> pd.DataFrame:
    return shuttle_events(rows, entities=entities, offset=offset)


def content(path: Path, key: str) -> pd.DataFrame:
    """A table's rows sorted by ``key`` (every column, so two tables compare by content)."""
    df = tables.read(path).to_pandas()
    return df.sort_values(key, kind="stable").reset_index(drop=True)
