"""Data validation before training and scoring.

A violation stops the job with a report that names columns and rows: nothing is
dropped or imputed silently, because a model trained on quietly repaired data
scores differently from the one the user thinks they trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MAX_ROWS_SHOWN = 10


@dataclass(slots=True)
class Violation:
    check: str
    column: str
    reason: str
    rows: list[int] = field(default_factory=list)
    n_rows: int = 0

    def __str__(self) -> str:
        where = ""
        if self.n_rows:
            shown = ", ".join(map(str, self.rows[:MAX_ROWS_SHOWN]))
            more = f" (+{self.n_rows - MAX_ROWS_SHOWN} more)" if self.n_rows > MAX_ROWS_SHOWN else ""
            where = f" rows [{shown}]{more}"
        return f"[{self.check}] column {self.column!r}: {self.reason}{where}"


@dataclass(slots=True)
class ValidationReport:
    violations: list[Violation] = field(default_factory=list)
    n_rows: int = 0
    n_columns: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    def __str__(self) -> str:
        if self.ok:
            return f"validation passed: {self.n_rows} rows x {self.n_columns} columns"
        lines = [f"validation failed on {self.n_rows} rows x {self.n_columns} columns:"]
        lines += [f"  - {v}" for v in self.violations]
        return "\n".join(lines)


class DataValidationError(ValueError):
    """Raised with the full report; str() is what a person needs to fix the data."""

    def __init__(self, report: ValidationReport):
        super().__init__(str(report))
        self.report = report


def _rows(mask: np.ndarray) -> tuple[list[int], int]:
    """Positional row numbers (0-based, data rows only) where mask holds, and their count."""
    hits = np.flatnonzero(mask)
    return [int(i) for i in hits[:MAX_ROWS_SHOWN]], int(hits.size)


def validate_frame(
    df: pd.DataFrame,
    feature_columns: Sequence[str] | None = None,
    label: str | None = None,
    entity_column: str | None = None,
    min_minority_fraction: float = 0.001,
    min_minority_rows: int = 10,
) -> ValidationReport:
    """Check schema, types, missing and non-finite values, and label balance.

    ``feature_columns`` None means every column except the label and entity.
    """
    report = ValidationReport(n_rows=len(df), n_columns=df.shape[1])
    v = report.violations
    if len(df) == 0:
        v.append(Violation("schema", "*", "the table has no rows"))
        return report
    if df.columns.duplicated().any():
        for col in df.columns[df.columns.duplicated()].unique():
            v.append(Violation("schema", str(col), "column name appears more than once"))
        return report
    special = {c for c in (label, entity_column) if c}
    for col in special:
        if col not in df.columns:
            v.append(Violation("schema", col, f"required column is missing; columns are {list(df.columns)}"))
    if feature_columns is None:
        feature_columns = [c for c in df.columns if c not in special]
    else:
        for col in feature_columns:
            if col not in df.columns:
                v.append(Violation("schema", col, "feature column is missing"))
        extra = [c for c in df.columns if c not in set(feature_columns) | special]
        for col in extra:
            v.append(Violation("schema", str(col), "unexpected column (not in the model's feature schema)"))
    if not feature_columns:
        v.append(Violation("schema", "*", "no feature columns"))
    for col in feature_columns:
        if col not in df.columns:
            continue
        series = df[col]
        if not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)):
            coerced = pd.to_numeric(series, errors="coerce")
            bad = coerced.isna() & series.notna()
            rows, n = _rows(bad.to_numpy())
            v.append(Violation("type", str(col), f"expected numbers, found dtype {series.dtype}", rows, n))
            continue
        values = series.to_numpy(dtype=np.float64)
        missing = np.isnan(values)
        if missing.any():
            rows, n = _rows(missing)
            v.append(Violation("missing", str(col), "missing values", rows, n))
        inf = np.isinf(values)
        if inf.any():
            rows, n = _rows(inf)
            v.append(Violation("range", str(col), "infinite values", rows, n))
        finite = values[np.isfinite(values)]
        if finite.size and np.abs(finite).max() > np.finfo(np.float32).max:
            rows, n = _rows(np.abs(np.nan_to_num(values)) > np.finfo(np.float32).max)
            v.append(Violation("range", str(col), "values overflow float32, the scoring precision", rows, n))
    if entity_column and entity_column in df.columns:
        missing = df[entity_column].isna().to_numpy()
        if missing.any():
            rows, n = _rows(missing)
            v.append(Violation("missing", entity_column, "missing entity keys", rows, n))
    if label and label in df.columns:
        _check_label(df, label, v, min_minority_fraction, min_minority_rows)
    return report


def _check_label(
    df: pd.DataFrame, label: str, v: list[Violation], min_fraction: float, min_rows: int
) -> None:
    y = df[label]
    if y.isna().any():
        rows, n = _rows(y.isna().to_numpy())
        v.append(Violation("missing", label, "missing labels", rows, n))
        return
    values = set(pd.unique(y).tolist())
    if not values <= {0, 1}:
        bad = ~y.isin([0, 1, True, False]).to_numpy()
        rows, n = _rows(bad)
        v.append(Violation("label", label, f"labels must be 0/1, found {sorted(map(str, values))[:5]}", rows, n))
        return
    n_pos = int(y.astype(int).sum())
    minority = min(n_pos, len(y) - n_pos)
    if minority == 0:
        v.append(Violation("balance", label, "only one class present; need both normal (0) and anomaly (1) rows"))
    elif minority < min_rows or minority / len(y) < min_fraction:
        v.append(
            Violation(
                "balance",
                label,
                f"minority class has {minority} rows ({minority / len(y):.4%}); need >= {min_rows} rows "
                f"and >= {min_fraction:.2%}",
            )
        )


def require_valid(df: pd.DataFrame, **kwargs) -> ValidationReport:
    """validate_frame, raising DataValidationError on any violation."""
    report = validate_frame(df, **kwargs)
    if not report.ok:
        raise DataValidationError(report)
    return report
