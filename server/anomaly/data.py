"""Reading tabular event data: the default ODDS Shuttle set and user files.

Shuttle comes inside the ``river`` wheel, so nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import sys
from pathlib import Path

import pandas as pd


def shuttle_path() -> Path:
    """Path of ``shuttle.csv.gz`` inside the installed ``river`` package."""
    spec = importlib.util.find_spec("river")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default dataset ships in the 'river' wheel: pip install --no-deps river"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "shuttle.csv.gz"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed river package")
    return path


def load_shuttle() -> pd.DataFrame:
    """ODDS Shuttle: 49,097 rows, 9 integer features f1..f9, label ``anomaly``."""
    return pd.read_csv(shuttle_path())


def read_table(source: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """Read CSV, Parquet or JSON Lines from a path, or from stdin when source is ``-``.

    The format comes from ``fmt`` or the file suffix (``.csv[.gz]``, ``.parquet``,
    ``.jsonl``/``.ndjson``); stdin defaults to CSV.
    """
    if str(source) == "-":
        data = sys.stdin.buffer.read()
        fmt = fmt or "csv"
        buf: io.BytesIO | Path = io.BytesIO(data)
    else:
        buf = Path(source)
        if not buf.exists():
            raise FileNotFoundError(f"no such file: {buf}")
        fmt = fmt or _format_from_suffix(buf)
    if fmt == "csv":
        return pd.read_csv(buf)
    if fmt == "parquet":
        return pd.read_parquet(buf)
    if fmt == "jsonl":
        return pd.read_json(buf, lines=True)
    raise ValueError(f"unknown format {fmt!r}: use csv, parquet or jsonl")


def _format_from_suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz", ".tsv")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise ValueError(f"cannot tell the format of {path.name}: pass --format csv|parquet|jsonl")


def data_fingerprint(df: pd.DataFrame) -> str:
    """SHA-256 of a frame's column names and values (row order included, index ignored).

    Logged with every training run, so a gate can tell whether a holdout comes from the very
    table a model's recorded split indexes into.
    """
    h = hashlib.sha256("\x1f".join(map(str, df.columns)).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()
