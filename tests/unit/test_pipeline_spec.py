"""The spec a drop infers (types, ranges, allowed values), the contract's own validation, reading
CSV/JSONL/Parquet drops as the same raw text, and the schema-break rules."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from server.pipeline.contract import schema_breaks, typed_frame
from server.pipeline.drops import read_drop
from server.pipeline.infer_spec import infer_spec
from server.pipeline.replay import shuttle_events, write_events
from server.pipeline.spec import PipelineSpec, load_spec, save_spec


@pytest.fixture
def sample() -> pd.DataFrame:
    df = shuttle_events(200, entities=4)
    df["tenant"] = ["acme", "globex"] * 100
    df["email"] = [f"u{i}@x.org" for i in range(200)]
    df["score"] = [0.5 + i / 10 for i in range(200)]
    return df


def test_inferred_spec_learns_types_ranges_and_allowed_values(tmp_path, sample):
    raw = read_drop(write_events(sample, tmp_path / "s.csv"))
    spec = infer_spec(raw, "device", "ts", label="anomaly", tenant="tenant", pii=["email"])
    assert spec.event_id == "event_id"
    types = {c.name: c.type for c in spec.columns}
    assert types["ts"] == "timestamp" and types["f1"] == "int" and types["score"] == "float"
    assert types["device"] == types["email"] == "string"
    f1 = spec.column("f1")
    assert (f1.min, f1.max) == (float(sample.f1.min()), float(sample.f1.max()))
    assert spec.column("tenant").allowed == ["acme", "globex"] and spec.column("anomaly").allowed == ["0", "1"]
    assert spec.column("device").allowed is None and spec.column("email").allowed is None  # keys and PII: no list
    assert spec.pii == {"email": "hash"}
    assert spec.feature_views[0].columns == [f"f{i}" for i in range(1, 10)] + ["score"]
    save_spec(spec, tmp_path / "p.yaml")
    assert load_spec(tmp_path / "p.yaml") == spec


def test_init_names_a_missing_column_and_a_timestamp_that_does_not_parse(tmp_path, sample):
    raw = read_drop(write_events(sample, tmp_path / "s.csv"))
    with pytest.raises(ValueError, match="--entity: the file has no column 'nope'"):
        infer_spec(raw, "nope", "ts")
    with pytest.raises(ValueError, match="--timestamp: column 'device'"):
        infer_spec(raw, "f1", "device")


def test_spec_validation_names_what_is_wrong(tmp_path, sample):
    spec = infer_spec(read_drop(write_events(sample, tmp_path / "s.csv")), "device", "ts")
    data = spec.model_dump()
    with pytest.raises(ValidationError, match="extra"):
        PipelineSpec.model_validate({**data, "colums": []})
    with pytest.raises(ValidationError, match="pii: 'device' is a key column"):
        PipelineSpec.model_validate({**data, "pii": {"device": "hash"}})
    with pytest.raises(ValidationError, match="'email' is not a numeric column"):
        PipelineSpec.model_validate({**data, "feature_views": [{"columns": ["email"]}]})
    with pytest.raises(FileNotFoundError, match="pipeline init"):
        load_spec(tmp_path / "missing.yaml")


def test_csv_jsonl_and_parquet_drops_read_as_the_same_text(tmp_path, sample):
    frames = [read_drop(write_events(sample, tmp_path / f"s.{ext}")) for ext in ("csv", "jsonl", "parquet")]
    for f in frames[1:]:
        assert list(f.columns) == list(frames[0].columns)
        pd.testing.assert_frame_equal(f.drop(columns=["score"]), frames[0].drop(columns=["score"]))
    nan = sample.head(2).copy()
    nan["score"] = [float("nan"), None]
    got = read_drop(write_events(nan, tmp_path / "nan.parquet"))
    assert got["score"].tolist()[0] == "nan"  # a NaN is data (the type check rejects it), not a missing value
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_drop(write_events(sample, tmp_path / "s.csv").rename(tmp_path / "s.txt"))


def test_schema_breaks_missing_renamed_and_retyped_columns(tmp_path, sample):
    raw = read_drop(write_events(sample, tmp_path / "s.csv"))
    spec = infer_spec(raw, "device", "ts")
    assert schema_breaks(raw, spec, 0.5) == []
    renamed = raw.rename(columns={"f2": "F2"})
    [b] = schema_breaks(renamed, spec, 0.5)
    assert b.column == "f2" and "'F2'" in b.message and "renamed" in b.message
    retyped = raw.copy()
    retyped["f4"] = "n/a"
    [b] = schema_breaks(retyped, spec, 0.5)
    assert b.column == "f4" and "changed type" in b.message and "'n/a'" in b.message
    few = raw.copy()
    few.loc[:10, "f4"] = "n/a"  # a few bad values: row-level failures, not a break
    assert schema_breaks(few, spec, 0.5) == []
    typed = typed_frame(few, spec)
    assert typed["f4"].isna().sum() == 11 and str(typed["ts"].dtype) == "datetime64[us, UTC]"


def test_key_columns_are_never_nullable(tmp_path, sample):
    sample.loc[3, "device"] = None
    spec = infer_spec(read_drop(write_events(sample, tmp_path / "s.csv")), "device", "ts")
    assert not spec.column("device").nullable  # a row without its entity is quarantined, not keyed by null
    data = spec.model_dump()
    data["columns"][[c["name"] for c in data["columns"]].index("ts")]["nullable"] = True
    with pytest.raises(ValidationError, match="timestamp: key column 'ts' cannot be nullable"):
        PipelineSpec.model_validate(data)
