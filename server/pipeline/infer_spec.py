"""A spec inferred from a sample drop: types, ranges and allowed values learned from the file.

Why infer: writing a contract by hand for a 40-column feed is where contracts stop being written.
The inferred spec is a draft for review: its ranges are the sample's, so a later drop outside
them is quarantined until a person widens the range (or accepts the quarantine).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from server.pipeline.spec import ColumnSpec, ColumnType, FeatureViewSpec, MaskPolicy, PipelineSpec

INT_RE = r"^[+-]?\d+$"
FLOAT_RE = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
BOOL_RE = r"^(?i:true|false)$"
TIMESTAMP_RE = r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(?:Z|[+-]\d{2}:?\d{2})?$"
#: The raw-text pattern each type must match: the row-level type check in the expectations.
TYPE_PATTERNS: dict[ColumnType, str] = {
    "int": INT_RE, "float": FLOAT_RE, "bool": BOOL_RE, "timestamp": TIMESTAMP_RE, "string": r"",
}
#: A text column with at most this many distinct values gets an allowed-values list.
MAX_ALLOWED_VALUES = 20


def infer_type(values: pd.Series) -> ColumnType:
    """The narrowest type every non-null value parses as (int < float; bool; timestamp; string)."""
    text = values.dropna().astype(str)
    if text.empty:
        return "string"
    for kind in ("int", "float", "bool", "timestamp"):
        if text.str.fullmatch(TYPE_PATTERNS[kind][1:-1]).all():
            return kind
    return "string"


def infer_column(name: str, values: pd.Series, allow_values: bool) -> ColumnSpec:
    kind = infer_type(values)
    spec = ColumnSpec(name=name, type=kind, nullable=bool(values.isna().any()))
    present = values.dropna()
    if kind in ("int", "float") and not present.empty:
        numbers = pd.to_numeric(present.astype(str))
        spec.min, spec.max = float(numbers.min()), float(numbers.max())
    if allow_values and kind in ("string", "int", "bool"):
        distinct = sorted(present.astype(str).unique().tolist())
        if 0 < len(distinct) <= MAX_ALLOWED_VALUES:
            spec.allowed = distinct
    return spec


def infer_spec(
    df: pd.DataFrame,
    entity: str,
    timestamp: str,
    label: str | None = None,
    tenant: str | None = None,
    pii: Sequence[str] = (),
    event_id: str | None = None,
    pii_policy: MaskPolicy = "hash",
    window: int = 32,
    alpha: float = 0.1,
) -> PipelineSpec:
    """The spec of ``df`` (raw text columns, as :func:`server.pipeline.drops.read_drop` gives).

    ``event_id`` defaults to a column named ``event_id`` when there is one. Allowed values are
    learned for text columns, the label and the tenant (not for keys, free text or PII). Raises
    ``ValueError`` naming a role column the file lacks or a timestamp column that does not parse."""
    if event_id is None and "event_id" in df.columns:
        event_id = "event_id"
    for role, col in (("--entity", entity), ("--timestamp", timestamp), ("--label", label), ("--tenant", tenant),
                      ("--event-id", event_id), *(("--pii", c) for c in pii)):
        if col is not None and col not in df.columns:
            raise ValueError(f"{role}: the file has no column {col!r} (columns: {', '.join(map(str, df.columns))})")
    keys = {entity, timestamp, event_id, *pii}
    columns = []
    for name in df.columns:
        col = infer_column(str(name), df[name], allow_values=name not in keys and
                           (name in (label, tenant) or infer_type(df[name]) == "string"))
        if name == timestamp and col.type != "timestamp":
            raise ValueError(f"--timestamp: column {timestamp!r} does not hold ISO-8601 timestamps")
        if name in (entity, event_id):
            col.type, col.min, col.max = "string", None, None
        if name in (entity, timestamp, event_id):  # keys: a row without one is quarantined, never keyed by null
            col.nullable = False
        if name in pii:
            col.type, col.allowed, col.min, col.max = "string", None, None, None
        columns.append(col)
    roles = {entity, timestamp, event_id, label, tenant}
    numeric = [c.name for c in columns if c.type in ("int", "float") and c.name not in roles and c.name not in pii]
    views = [FeatureViewSpec(columns=numeric, window=window, alpha=alpha)] if numeric else []
    return PipelineSpec(event_id=event_id, entity=entity, timestamp=timestamp, label=label, tenant=tenant,
                        columns=columns, pii=dict.fromkeys(pii, pii_policy), feature_views=views)
