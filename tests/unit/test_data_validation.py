from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from server.anomaly.data import load_shuttle, read_table
from server.anomaly.validation import DataValidationError, require_valid, validate_frame


def frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    df["y"] = (np.arange(n) % 10 == 0).astype(int)
    return df


def test_shuttle_passes():
    df = load_shuttle()
    assert df.shape == (49097, 10)
    assert int(df["anomaly"].sum()) == 3511
    assert validate_frame(df, label="anomaly").ok


def test_missing_and_infinite_values_name_columns_and_rows():
    df = frame()
    df.loc[[3, 7], "b"] = np.nan
    df.loc[5, "c"] = np.inf
    with pytest.raises(DataValidationError) as err:
        require_valid(df, label="y")
    text = str(err.value)
    assert "'b': missing values rows [3, 7]" in text
    assert "'c': infinite values rows [5]" in text
    assert len(err.value.report.violations) == 2


def test_types_label_and_balance():
    df = frame()
    df["a"] = df["a"].astype(str)
    df.loc[0, "a"] = "oops"
    report = validate_frame(df, label="y")
    assert any(v.check == "type" and v.column == "a" for v in report.violations)
    df = frame()
    df["y"] = 0
    assert any(v.check == "balance" for v in validate_frame(df, label="y").violations)
    df = frame()
    df.loc[1, "y"] = 2
    assert any(v.check == "label" and v.rows == [1] for v in validate_frame(df, label="y").violations)
    df = frame(2000)
    df["y"] = 0
    df.loc[0, "y"] = 1
    assert any(v.check == "balance" for v in validate_frame(df, label="y").violations)


def test_schema_checks():
    df = frame()
    report = validate_frame(df, feature_columns=["a", "b", "z"], label="y")
    checks = {(v.check, v.column) for v in report.violations}
    assert ("schema", "z") in checks and ("schema", "c") in checks
    assert not validate_frame(df.iloc[:0], label="y").ok
    assert any(v.column == "missing_label" for v in validate_frame(df, label="missing_label").violations)


def test_read_table_formats(tmp_path):
    df = frame(20)
    df.to_csv(tmp_path / "x.csv", index=False)
    df.to_parquet(tmp_path / "x.parquet")
    df.to_json(tmp_path / "x.jsonl", orient="records", lines=True)
    for name in ("x.csv", "x.parquet", "x.jsonl"):
        got = read_table(tmp_path / name)
        np.testing.assert_allclose(got[["a", "b", "c"]].to_numpy(), df[["a", "b", "c"]].to_numpy())
    with pytest.raises(ValueError, match="format"):
        read_table(tmp_path / "x.csv", "xml")
    with pytest.raises(FileNotFoundError):
        read_table(tmp_path / "nope.csv")
