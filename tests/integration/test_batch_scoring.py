"""`stackserve score --batch` on Ray Data, run as users run it (a subprocess with a private Ray head):
every row of a folder of Parquet and CSV files scored, equal to the in-process scorer, into Parquet;
bad inputs refused with a clear message before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from server.anomaly.batch_scoring import BatchInputError, input_files
from server.anomaly.data import load_shuttle
from server.anomaly.scorer import load_scorer

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def run_cli(settings, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "STACKSERVE_DATA_DIR": str(settings.data_dir)}
    for var in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):  # a private head of its own
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "server.cli", "score", "--batch", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(300)
def test_a_folder_of_parquet_and_csv_is_scored_like_the_in_process_scorer(trained, settings, tmp_path):
    data = load_shuttle().drop(columns=["anomaly"], errors="ignore").reset_index(drop=True)
    data = data.iloc[:30_000].copy()
    data["row_id"] = np.arange(len(data))
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    data.iloc[:12_000].to_parquet(inputs / "a.parquet")
    data.iloc[12_000:20_000].to_parquet(inputs / "sub" / "b.parquet")
    data.iloc[20_000:].to_csv(inputs / "c.csv", index=False)
    out = tmp_path / "out"
    done = run_cli(settings, str(inputs), "-o", str(out), "--model", "shuttle-rf", "--batch-size", "4096",
                   "--actors", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["rows"] == len(data) and report["model"] == "shuttle-rf" and report["events_per_s"] > 0
    got = pd.read_parquet(out).sort_values("row_id").reset_index(drop=True)
    assert list(got["row_id"]) == list(range(len(data)))  # every row once: none lost, none twice
    scorer = load_scorer(settings)
    columns = list(scorer.model("shuttle-rf").card.feature_names)
    want = scorer.score("shuttle-rf", data[columns].to_numpy(dtype=np.float32))
    np.testing.assert_allclose(got["score"].to_numpy(), want.scores, rtol=1e-6, atol=1e-9)
    assert (got["is_anomaly"].to_numpy() == want.is_anomaly).all()
    assert report["anomalies"] == int(want.is_anomaly.sum())


def test_bad_inputs_are_refused_before_any_work(trained, settings, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.json").write_text("{}")
    for paths, message in (([str(tmp_path / "nope")], "no such file or folder"),
                           ([str(tmp_path / "empty")], "no .parquet or .csv"),
                           ([str(tmp_path / "x.json")], "reads .parquet and .csv")):
        with pytest.raises(BatchInputError, match=message):
            input_files(paths)
    pd.DataFrame({"a": [1.0]}).to_parquet(tmp_path / "few.parquet")
    # in this process: a refusal comes before any Ray work, so nothing here starts Ray
    from server.cli import main

    base = ["--data-dir", str(settings.data_dir), "score", "--batch", str(tmp_path / "few.parquet")]
    capsys.readouterr()
    assert main([*base, "-o", str(tmp_path / "o1"), "--model", "shuttle-rf-stream"]) == 2
    err = capsys.readouterr().err
    assert "stream features" in err, err[-2000:]
    assert main([*base, "-o", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "lacks columns" in err, err[-2000:]
    import ray

    assert not ray.is_initialized()
