"""`stackserve pipeline ...` as a user runs it (subprocesses on a temporary data dir): replay, init,
ingest, run, status --json, bad drops with clear messages and exit codes, and the crash drill: a
SIGKILL of `pipeline run` mid-commit leaves every Delta log readable and a re-run ends with the
same tables as a run that was never killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.integration

ROWS = 20_000


def cli(data_dir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", "--data-dir", str(data_dir), "pipeline", *args],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    """A data dir with the spec inferred from a Shuttle replay and two drops in bronze (not run)."""
    root = tmp_path_factory.mktemp("pipeline")
    data = root / "data"
    ok(cli(data, "replay", "--out", str(root / "events.csv"), "--rows", str(ROWS), "--entities", "32"))
    ok(cli(data, "init", "--data", str(root / "events.csv"), "--entity", "device", "--timestamp", "ts",
           "--label", "anomaly"))
    events = pd.read_csv(root / "events.csv")
    head, tail = events.iloc[: ROWS // 2], events.iloc[ROWS // 2 :].astype({"f1": object})
    tail.loc[tail.index[:5], "f1"] = "abc"  # five rows of the wrong type: quarantined row by row
    head.to_csv(root / "head.csv", index=False)
    tail.to_json(root / "tail.jsonl", orient="records", lines=True)
    ok(cli(data, "ingest", str(root / "head.csv"), str(root / "tail.jsonl")))
    return data


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _tables(data: Path) -> dict[str, pd.DataFrame]:
    from server.pipeline import tables
    from server.pipeline.tables import Layout

    layout = Layout(data / "pipeline")
    out = {}
    for name, path, key in (("silver", layout.silver, "_event_id"), ("quarantine", layout.quarantine, "_qkey"),
                            ("gold", layout.gold("gold_features_v1"), "_event_id")):
        df = tables.read(path).to_pandas()
        out[name] = df.sort_values(key).reset_index(drop=True)
    return out


def test_init_ingest_run_status(tmp_path, ingested):
    data = _copy(ingested, tmp_path / "data")
    report = json.loads(ok(cli(data, "run", "--json")).stdout)
    assert report["rows_in"] == ROWS and report["silver_rows"] == ROWS - 5 and report["quarantined_rows"] == 5
    doc = json.loads(ok(cli(data, "status", "--json")).stdout)
    t = doc["tables"]
    assert (t["bronze"]["rows"], t["bronze"]["version"]) == (ROWS, 2)
    assert t["silver"]["rows"] == ROWS - 5 and t["quarantine"]["rows"] == 5
    assert t["gold"]["gold_features_v1"]["rows"] == ROWS - 5
    assert doc["quarantine_by_expectation"] == {"expect_column_values_to_match_regex:f1": 5}
    ge = doc["last_great_expectations_result"]
    assert ge["success"] is False and ge["evaluated_rows"] == ROWS
    assert {"name": "expect_column_values_to_match_regex:f1", "success": False, "unexpected_count": 5} \
        in ge["expectations"]
    again = json.loads(ok(cli(data, "run", "--json")).stdout)
    assert again["rows_in"] == 0 and json.loads(ok(cli(data, "status", "--json")).stdout)["tables"] == t
    assert "stackserve_pipeline_quarantined_rows_total" in (data / "pipeline" / "metrics.prom").read_text()


def test_bad_drops_get_clear_messages_and_nothing_landed_is_lost(tmp_path, ingested):
    data = _copy(ingested, tmp_path / "data")
    ok(cli(data, "run"))
    sample = pd.DataFrame({"event_id": ["n1", "n2"], "device": ["d", "d"], "ts": ["2026-01-02T00:00:00Z"] * 2})
    renamed = tmp_path / "renamed.csv"
    sample.assign(**{f"f{i}": 1 for i in range(1, 10)}, anomaly=0).rename(columns={"f7": "f7b"}).to_csv(
        renamed, index=False)
    empty = tmp_path / "empty.csv"
    empty.write_text("event_id,device,ts\n")
    out = ok(cli(data, "ingest", str(renamed), str(empty)))
    assert "empty drop" in out.stderr
    run = ok(cli(data, "run"))
    assert "column 'f7' is missing" in run.stderr and "'f7b'" in run.stderr
    doc = json.loads(ok(cli(data, "status", "--json")).stdout)
    assert doc["quarantine_by_expectation"]["schema:f7"] == 2
    assert doc["tables"]["bronze"]["rows"] == ROWS + 2 and doc["tables"]["silver"]["rows"] == ROWS - 5
    missing = cli(data, "ingest", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "nope.csv" in missing.stderr
    bad_init = cli(tmp_path / "other", "init", "--data", str(renamed), "--entity", "user", "--timestamp", "ts")
    assert bad_init.returncode == 2 and "--entity: the file has no column 'user'" in bad_init.stderr
    bad_range = cli(data, "backfill", "--from", "2026-01-02", "--to", "2026-01-01")
    assert bad_range.returncode == 2 and "before" in bad_range.stderr


@pytest.fixture(scope="module")
def clean_tables(ingested, tmp_path_factory) -> dict[str, pd.DataFrame]:
    data = _copy(ingested, tmp_path_factory.mktemp("clean") / "data")
    ok(cli(data, "run"))
    return _tables(data)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("where", ["silver-before-commit", "silver-between-commits", "silver-before-checkpoint",
                                   "gold-before-checkpoint", "while-writing"])
def test_sigkill_mid_run_leaves_delta_consistent_and_a_rerun_completes(tmp_path, ingested, clean_tables, where):
    from deltalake import DeltaTable

    data = _copy(ingested, tmp_path / "data")
    if where == "while-writing":  # a real kill from outside, as soon as the run starts writing
        proc = subprocess.Popen([sys.executable, "-m", "server.cli", "--data-dir", str(data), "pipeline", "run"],
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        for line in proc.stderr:
            if line.startswith("silver: writing"):
                proc.send_signal(signal.SIGKILL)
                break
        rc = proc.wait(timeout=120)
    else:  # the run kills itself with SIGKILL at that point (runner.FAULT_ENV)
        rc = cli(data, "run", env={"STACKSERVE_PIPELINE_FAULT": where}).returncode
    assert rc == -signal.SIGKILL
    for table in ("bronze", "silver", "quarantine", "checkpoints"):
        path = data / "pipeline" / table
        if path.exists() and (path / "_delta_log").exists():
            DeltaTable(str(path)).to_pyarrow_table()  # the log is consistent and every file it names is there
    ok(cli(data, "status", "--json"))
    ok(cli(data, "run"))
    after = _tables(data)
    for name, want in clean_tables.items():
        pd.testing.assert_frame_equal(after[name], want, obj=f"{name} after a kill at {where}")
