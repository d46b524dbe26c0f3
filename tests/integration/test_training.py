"""Training on Shuttle with real MLflow tracking and registry (no Ray needed)."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from server.anomaly import registry
from server.anomaly.data import load_shuttle
from server.anomaly.training import train_family
from server.anomaly.validation import DataValidationError

pytestmark = pytest.mark.integration


def test_quality_on_shuttle_test_split(trained):
    iforest = trained["shuttle-iforest"].metrics
    rf = trained["shuttle-rf"].metrics
    assert iforest["test_roc_auc"] >= 0.99
    assert iforest["test_f1"] >= 0.95
    assert rf["test_f1"] >= 0.99
    assert trained["shuttle-rf-stream"].metrics["test_roc_auc"] > 0.9


def test_split_is_stratified_and_disjoint(trained):
    split = trained["shuttle-rf"].split
    y = load_shuttle()["anomaly"].to_numpy()
    parts = [split.train, split.validation, split.test]
    assert sum(map(len, parts)) == len(y)
    assert len(np.unique(np.concatenate(parts))) == len(y)
    rates = [y[p].mean() for p in parts]
    assert max(rates) - min(rates) < 0.002


def test_run_logs_params_metrics_and_artifacts(trained, settings):
    client = registry.connect(settings)
    run = client.get_run(trained["shuttle-iforest"].run_id)
    for key in ("test_precision", "test_recall", "test_f1", "test_roc_auc", "test_average_precision",
                "scoring_latency_batch1_us", "scoring_latency_batch4096_us_per_event"):
        assert key in run.data.metrics
    assert run.data.params["family"] == "iforest"
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"compiled", "feature_schema.json", "reference_profile.json"} <= names
    profile = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/reference_profile.json")
    assert set(profile["features"]) == {f"f{i}" for i in range(1, 10)}
    assert len(profile["features"]["f1"]["bin_edges"]) >= 2


def test_registered_champion_equals_the_logged_sklearn_model(trained, settings):
    client = registry.connect(settings)
    df = load_shuttle()
    X = df.drop(columns="anomaly").to_numpy(np.float64)[trained["shuttle-rf"].split.test[:2000]]
    for name in ("shuttle-rf", "shuttle-iforest"):
        served = registry.load_servable(client, name)
        assert served.card.version == trained[name].version
        # skops rebuilds only the types we listed at log time (SKOPS_TRUSTED_TYPES)
        sk = mlflow.sklearn.load_model(f"models:/{name}@champion")
        want = sk.predict_proba(X)[:, 1] if name == "shuttle-rf" else -sk.decision_function(X)
        np.testing.assert_allclose(served.score(X), want, atol=1e-6)


def test_promote_moves_the_alias(trained, settings):
    client = registry.connect(settings)
    df = load_shuttle().sample(6000, random_state=1).reset_index(drop=True)
    r = train_family(df, "iforest", "promote-check", "anomaly", None, settings)
    assert r.version == "1"
    r2 = train_family(df, "iforest", "promote-check", "anomaly", None, settings)
    assert str(client.get_model_version_by_alias("promote-check", "champion").version) == "1"
    registry.promote(client, "promote-check", r2.version)
    assert str(client.get_model_version_by_alias("promote-check", "champion").version) == r2.version
    with pytest.raises(registry.ModelNotFoundError):
        registry.promote(client, "promote-check", "99")
    with pytest.raises(registry.ModelNotFoundError):
        registry.load_servable(client, "never-registered")


def test_invalid_data_stops_training_and_registers_nothing(settings):
    df = load_shuttle().head(3000).copy()
    df.loc[[10, 20], "f3"] = np.nan
    df["f5"] = df["f5"].astype(object)
    df.loc[7, "f5"] = "bad"
    with pytest.raises(DataValidationError) as err:
        train_family(df, "rf", "should-not-exist", "anomaly", None, settings)
    text = str(err.value)
    assert "'f3': missing values rows [10, 20]" in text and "'f5'" in text
    client = registry.connect(settings)
    assert not registry.has_version(client, "should-not-exist")


def test_cli_trains_a_user_file(tmp_path, settings):
    from server.cli import main

    df = load_shuttle().sample(5000, random_state=3)
    path = tmp_path / "events.parquet"
    df.rename(columns={"anomaly": "is_bad"}).to_parquet(path)
    code = main(["--data-dir", str(settings.data_dir), "train", "anomaly", "--data", str(path), "--label", "is_bad",
                 "--families", "rf", "--name-prefix", "userfile"])
    assert code == 0
    client = registry.connect(settings)
    served = registry.load_servable(client, "userfile-rf")
    assert served.card.feature_names == [f"f{i}" for i in range(1, 10)]
    assert json.loads(served.card.to_json())["name"] == "userfile-rf"
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"a": [1.0, np.nan], "y": [0, 1]}).to_csv(bad, index=False)
    assert main(["--data-dir", str(settings.data_dir), "train", "anomaly", "--data", str(bad), "--label", "y",
                 "--families", "rf"]) == 3


def test_serve_refuses_to_start_without_registered_models(tmp_path, capsys):
    from server.cli import main

    assert main(["--data-dir", str(tmp_path), "serve", "--port", "0", "--metrics-port", "0"]) == 2
    assert "stackserve train anomaly" in capsys.readouterr().err


def test_batch_drift_report(trained, settings, tmp_path, capsys):
    from server.cli import main

    df = load_shuttle()
    current = df.iloc[trained["shuttle-rf"].split.test].drop(columns="anomaly")
    current.to_csv(tmp_path / "ok.csv", index=False)
    args = ["--data-dir", str(settings.data_dir), "drift", "--reference", "shuttle-rf@champion", "--fail-on-alert"]
    assert main([*args, "--current", str(tmp_path / "ok.csv"), "--html", str(tmp_path / "ok.html")]) == 0
    shifted = current.assign(f5=current["f5"] * 3.0)  # a scale change
    shifted.to_parquet(tmp_path / "bad.parquet")
    capsys.readouterr()
    assert main([*args, "--current", str(tmp_path / "bad.parquet"), "--html", str(tmp_path / "bad.html")]) == 1
    out = capsys.readouterr().out
    assert [ln for ln in out.splitlines() if "│ f5 " in ln and "alert" in ln]
    page = (tmp_path / "bad.html").read_text()
    assert "<tr class='alert'><td>f5</td>" in page and "data:image/png;base64," in page
    assert main([*args, "--current", str(tmp_path / "bad.parquet"), "--reference", "nope"]) == 2
    run_id = trained["shuttle-rf"].run_id
    assert main([*args, "--current", str(tmp_path / "ok.csv"), "--reference", run_id, "--html",
                 str(tmp_path / "run.html")]) == 0


def test_gates_pass_a_retrained_challenger_and_fail_a_bad_one(settings, capsys):
    from server.cli import main

    base = ["--data-dir", str(settings.data_dir), "gate", "--model", "gate-rf"]
    df = load_shuttle()
    good = train_family(df, "rf", "gate-rf", "anomaly", None, settings)  # champion (first version)
    rng = np.random.default_rng(0)
    bad_df = df.assign(anomaly=rng.permutation(df["anomaly"].to_numpy()))  # labels carry no signal
    bad = train_family(bad_df, "rf", "gate-rf", "anomaly", None, settings)
    assert good.version == "1" and bad.version == "2"
    capsys.readouterr()
    assert main([*base, "--challenger", bad.version]) == 1
    out = capsys.readouterr().out
    assert [ln for ln in out.splitlines() if "regression" in ln and "FAIL" in ln]
    assert main([*base, "--challenger", good.version]) == 0
    assert main([*base, "--challenger", "77"]) == 2
