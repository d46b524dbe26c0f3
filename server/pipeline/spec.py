"""The pipeline spec: the schema contract, expectations, PII policies and feature views, in YAML.

Why a file and not code: the contract is what a data owner reviews and versions with the data
(``stackserve pipeline init`` writes one inferred from a sample drop); every stage reads it, so
typing, the Great Expectations suite, masking and gold all follow one reviewed description.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

ColumnType = Literal["int", "float", "bool", "string", "timestamp"]
MaskPolicy = Literal["hash", "redact"]

SPEC_FILE = "pipeline.yaml"


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt key in a reviewed contract must not silently do nothing."""

    model_config = ConfigDict(extra="forbid")


class ColumnSpec(_Strict):
    """One column of the contract: its type and the values it may hold."""

    name: str
    type: ColumnType
    nullable: bool = False
    min: float | None = Field(None, description="numeric columns: smallest allowed value")
    max: float | None = Field(None, description="numeric columns: largest allowed value")
    allowed: list[str] | None = Field(None, description="the only values allowed (as text)")


class FreshnessSpec(_Strict):
    """How late or how far ahead an event may be: the freshness expectation.

    ``max_lateness_s``: an event older than the newest event already in silver minus this is
    quarantined as late (a backfill re-admits such ranges on purpose). ``max_future_s``: an event
    stamped later than its ingestion time plus this is quarantined (clock skew)."""

    max_lateness_s: float = Field(7 * 86400.0, gt=0)
    max_future_s: float = Field(300.0, ge=0)


class FeatureViewSpec(_Strict):
    """A gold feature view: per-entity rolling statistics of ``columns`` (the stream kernels).

    Changing any field changes the view's definition and makes a new version (a new table); the
    previous version's table stays readable until retired."""

    name: str = "gold_features"
    columns: list[str] = Field(min_length=1)
    window: int = Field(32, ge=1)
    alpha: float = Field(0.1, gt=0, le=1)

    def definition(self) -> dict:
        """What identifies the computation (the name only names it)."""
        return {"columns": list(self.columns), "window": self.window, "alpha": self.alpha,
                "kernel": "stream_features/1"}


class PipelineSpec(_Strict):
    """The whole contract, as written to ``pipeline.yaml``."""

    version: int = 1
    event_id: str | None = Field(None, description="column holding a unique event id; none: a hash of the raw row")
    entity: str
    timestamp: str
    label: str | None = None
    tenant: str | None = None
    columns: list[ColumnSpec]
    pii: dict[str, MaskPolicy] = Field(default_factory=dict, description="column -> hash (HMAC-SHA256) or redact")
    freshness: FreshnessSpec = Field(default_factory=FreshnessSpec)
    feature_views: list[FeatureViewSpec] = Field(default_factory=list)
    entity_buckets: int = Field(16, ge=1, le=1024, description="gold is partitioned by a hash of the entity")

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("columns: a column is listed twice")
        for role in ("entity", "timestamp", "label", "tenant", "event_id"):
            col = getattr(self, role)
            if col is not None and col not in names:
                raise ValueError(f"{role}: column {col!r} is not among the columns")
        if self.column(self.timestamp).type != "timestamp":
            raise ValueError(f"timestamp: column {self.timestamp!r} must have type timestamp")
        for role in ("entity", "timestamp", "event_id"):
            col = getattr(self, role)
            if col is not None and self.column(col).nullable:
                raise ValueError(f"{role}: key column {col!r} cannot be nullable")
        for col in self.pii:
            if col not in names:
                raise ValueError(f"pii: column {col!r} is not among the columns")
            if col in (self.entity, self.timestamp, self.event_id):
                raise ValueError(f"pii: {col!r} is a key column; mask a copy of it, not the key")
        for view in self.feature_views:
            for col in view.columns:
                if col not in names or self.column(col).type not in ("int", "float", "bool"):
                    raise ValueError(f"feature view {view.name}: {col!r} is not a numeric column")
        if len({v.name for v in self.feature_views}) != len(self.feature_views):
            raise ValueError("feature_views: names must be unique")
        return self

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def load_spec(path: Path) -> PipelineSpec:
    """Read and validate a spec; a missing file says how to make one."""
    if not path.exists():
        raise FileNotFoundError(f"no pipeline spec at {path}: run `stackserve pipeline init --data FILE ...` first")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a pipeline spec is a mapping")
    return PipelineSpec.model_validate(data)


def save_spec(spec: PipelineSpec, path: Path) -> None:
    """Write the spec as YAML (keys in the model's order, so diffs of reviews stay small)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False))
