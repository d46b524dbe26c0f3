"""The schema contract: a batch's columns against the spec (schema breaks), and typing raw text.

Why a batch-level check before the row-level expectations: when a producer renames, drops or
retypes a column, every row of its drop fails, and thousands of row failures hide the one-line
cause. A schema break quarantines the whole batch with a message naming the column; a few bad
values in an otherwise well-typed column stay row-level failures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from server.pipeline.infer_spec import TYPE_PATTERNS
from server.pipeline.spec import ColumnSpec, PipelineSpec


@dataclass(frozen=True, slots=True)
class SchemaBreak:
    """Why a batch cannot be read under the contract."""

    column: str
    message: str


def type_ok(values: pd.Series, column: ColumnSpec) -> pd.Series:
    """True where a raw text value parses as the column's type (nulls count as parsing)."""
    if column.type == "string":
        return pd.Series(True, index=values.index)
    text = values.astype("string")
    ok = text.str.fullmatch(TYPE_PATTERNS[column.type][1:-1]).fillna(True)
    return ok.astype(bool)


def schema_breaks(raw: pd.DataFrame, spec: PipelineSpec, retyped_fraction: float) -> list[SchemaBreak]:
    """The batch's breaks: a spec column missing (with the likely rename), or retyped (more than
    ``retyped_fraction`` of its non-null values do not parse as its type)."""
    present = set(map(str, raw.columns))
    extra = sorted(present - set(spec.column_names))
    out = []
    for col in spec.columns:
        if col.name not in present:
            hint = f" (the batch has {', '.join(repr(e) for e in extra)} instead: renamed?)" if extra else ""
            out.append(SchemaBreak(col.name, f"schema break: column {col.name!r} is missing{hint}"))
            continue
        values = raw[col.name]
        nonnull = values.notna()
        if col.type == "string" or not nonnull.any():
            continue
        bad = ~type_ok(values[nonnull], col)
        if bad.mean() > retyped_fraction:
            example = values[nonnull][bad].iloc[0]
            out.append(SchemaBreak(col.name, f"schema break: column {col.name!r} changed type: {bad.mean():.0%} of "
                                             f"its values are not {col.type} (e.g. {example!r})"))
    return out


def typed_column(values: pd.Series, column: ColumnSpec) -> pd.Series:
    """Raw text to the column's type; a value that does not parse becomes null (the type
    expectation quarantines its row)."""
    ok = type_ok(values, column)
    clean = values.where(ok & values.notna(), None)
    if column.type == "int":
        numbers = pd.to_numeric(clean, errors="coerce")
        fits = numbers.abs() < 2**63
        return numbers.where(fits).astype("Int64") if not fits.all() else numbers.astype("Int64")
    if column.type == "float":
        return pd.to_numeric(clean, errors="coerce").astype("float64")
    if column.type == "bool":
        return clean.map(lambda v: None if v is None else v.lower() == "true").astype("boolean")
    if column.type == "timestamp":
        return pd.to_datetime(clean, utc=True, format="ISO8601", errors="coerce").astype("datetime64[us, UTC]")
    return clean.astype(object)


def typed_frame(raw: pd.DataFrame, spec: PipelineSpec) -> pd.DataFrame:
    """Every spec column typed, in spec order (extra columns left out)."""
    return pd.DataFrame({c.name: typed_column(raw[c.name], c) for c in spec.columns}, index=raw.index)


def epoch_us(ts: pd.Series) -> np.ndarray:
    """Microseconds since the epoch (int64; NaT becomes the int64 minimum)."""
    return ts.astype("datetime64[us, UTC]").to_numpy(dtype="datetime64[us]").astype(np.int64)
