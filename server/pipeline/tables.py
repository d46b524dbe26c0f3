"""Where the pipeline's Delta tables live under the data dir, and the few ways they are read.

Layout (``pipeline.dir``, default ``<data_dir>/pipeline``)::

    pipeline.yaml        the spec          bronze/  silver/  quarantine/  checkpoints/
    gold/<view>_v<N>/    one table per feature-view version
    feature_views.json   versions of each view    ge_last_result.json   metrics.prom
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

#: Every table records its changes (the change data feed drives the next stage).
CDF = {"delta.enableChangeDataFeed": "true"}


@dataclass(frozen=True, slots=True)
class Layout:
    """Paths of one pipeline's files."""

    root: Path

    @property
    def spec(self) -> Path:
        return self.root / "pipeline.yaml"

    @property
    def bronze(self) -> Path:
        return self.root / "bronze"

    @property
    def silver(self) -> Path:
        return self.root / "silver"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def gold(self, table: str) -> Path:
        return self.root / "gold" / table

    @property
    def feature_views(self) -> Path:
        return self.root / "feature_views.json"

    @property
    def ge_result(self) -> Path:
        return self.root / "ge_last_result.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.prom"

    @property
    def lock(self) -> Path:
        return self.root / ".run.lock"


def is_table(path: Path) -> bool:
    from deltalake import DeltaTable

    return path.exists() and DeltaTable.is_deltatable(str(path))


def ensure_table(path: Path, schema: pa.Schema, partition_by: list[str] | None = None,
                 extra_config: dict[str, str] | None = None) -> None:
    """Create the table (empty, change data feed on) unless it exists."""
    from deltalake import DeltaTable

    if is_table(path):
        return
    path.mkdir(parents=True, exist_ok=True)
    DeltaTable.create(str(path), schema, mode="ignore", partition_by=partition_by,
                      configuration={**CDF, **(extra_config or {})})


def version(path: Path) -> int | None:
    """The table's latest version, ``None`` when it does not exist."""
    from deltalake import DeltaTable

    return DeltaTable(str(path)).version() if is_table(path) else None


def read(path: Path, at_version: int | None = None, filters: list | None = None) -> pa.Table:
    """The table's rows (at a version), optionally filtered (pyarrow DNF filters)."""
    from deltalake import DeltaTable

    dt = DeltaTable(str(path), version=at_version)
    return dt.to_pyarrow_table(filters=filters)


def changes(path: Path, start: int, end: int, columns: list[str] | None = None) -> pa.Table:
    """Change data feed of versions ``start..end`` (inclusive): rows plus ``_change_type``,
    ``_commit_version``."""
    from deltalake import DeltaTable

    reader = DeltaTable(str(path)).load_cdf(starting_version=start, ending_version=end, columns=columns)
    table = pa.RecordBatchReader.from_stream(reader).read_all()
    # the change feed comes as string_view, which pyarrow.compute and pandas take less well
    schema = pa.schema([f.with_type(pa.string()) if f.type == pa.string_view() else f for f in table.schema])
    return table.cast(schema)


def row_count(path: Path) -> int:
    from deltalake import DeltaTable

    return DeltaTable(str(path)).count() if is_table(path) else 0


def txn_version(path: Path, app_id: str) -> int | None:
    """The last source version a writer recorded in this table's log with its commit (Delta's
    application transaction): written atomically with the data, so it survives a crash that the
    checkpoint table's row after it does not."""
    from deltalake import DeltaTable

    return DeltaTable(str(path)).transaction_version(app_id) if is_table(path) else None
