"""Reading a drop (CSV, JSON Lines or Parquet) as raw text, the form bronze keeps.

Why text: bronze stores events as received, before any typing, so that a value the contract
rejects (``"abc"`` in a numeric column, ``nan``) is still there to inspect and to re-process after
the contract is fixed. CSV cells are kept exactly; JSON and Parquet values are written as Python
prints them (``1.5``, ``True``, ``nan``); nulls stay null.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

FORMATS = ("csv", "jsonl", "parquet")


def drop_format(path: Path) -> str:
    """The format from the suffix (``.csv[.gz]``, ``.jsonl``/``.ndjson``/``.json``, ``.parquet``/``.pq``)."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json", ".jsonl.gz")):
        return "jsonl"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ValueError(f"cannot tell the format of {path.name}: use .csv, .jsonl or .parquet")


def _as_text(value: object) -> str | None:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def read_drop(path: Path) -> pd.DataFrame:
    """Every column as text (object dtype, ``None`` for a missing value), in file order.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for an unreadable one
    (the message names the file)."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    fmt = drop_format(path)
    try:
        if fmt == "csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
            return df.astype(object).where(df.notna(), None)
        if fmt == "jsonl":
            df = pd.read_json(path, lines=True, dtype=False, convert_dates=False)
        else:
            df = pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: cannot read as {fmt}: {exc}") from exc
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        series = df[col]
        mask = series.isna() & ~series.map(lambda v: isinstance(v, float))  # a float NaN is data ("nan")
        out[str(col)] = pd.Series([None if m else _as_text(v) for v, m in zip(series.tolist(), mask.tolist(),
                                                                                strict=True)], dtype=object)
    return out
