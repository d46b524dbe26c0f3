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
#: The latency gate's limit for gate runs in this file: out of their way. Its default (1.2x) holds on a quiet
#: machine (`make gate`), but here the session's server shares the 2 cores: clean CI runs read 1.28x, 1.42x
#: and 2.19x (1367 vs 624 µs) for pairs that measure 1.07x or less quietly. These tests are about the other
#: gates and the holdout; the latency gate's logic is tests/unit/test_latency_gate.py's.
NOISY_MACHINE = ("--max-latency-ratio", "100")
GATE_TREES = 30


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


def _gate(settings, model: str, *extra: str) -> int:
    from server.cli import main

    return main(["--data-dir", str(settings.data_dir), "gate", "--model", model, *extra])


def _subset_split(split, rng, share: float):
    from server.anomaly.training import Split

    train = np.sort(rng.choice(split.train, int(share * len(split.train)), replace=False))
    return Split(train, split.validation, split.test)


def test_gates_pass_a_retrained_challenger_and_fail_degraded_ones(settings, capsys):
    from server.anomaly.training import stratified_split

    df = load_shuttle()
    y = df["anomaly"].to_numpy()
    # forests of 30 trees: the gates' verdicts are this test's subject, not the forest's size
    settings = settings.model_copy(update={"training": settings.training.model_copy(
        update={"rf_n_estimators": GATE_TREES})})
    champion = train_family(df, "rf", "gate-rf", "anomaly", None, settings)  # v1, the champion
    settings.training.seed += 1  # a retrained challenger: another estimator seed, the same split
    try:
        retrained = train_family(df, "rf", "gate-rf", "anomaly", None, settings)
    finally:
        settings.training.seed -= 1
    split = stratified_split(y, settings.training)
    rng = np.random.default_rng(0)
    few_rows = train_family(df, "rf", "gate-rf", "anomaly", None, settings, split=_subset_split(split, rng, 0.3))
    noisy = y.copy()
    seen = np.concatenate([split.train, split.validation])
    flip = rng.choice(seen, int(0.1 * len(seen)), replace=False)  # test rows keep their true labels
    noisy[flip] = 1 - noisy[flip]
    flipped = train_family(df.assign(anomaly=noisy), "rf", "gate-rf", "anomaly", None, settings, split=split)
    permuted = df.assign(anomaly=rng.permutation(y))  # labels carry no signal (and another split)
    no_signal = train_family(permuted, "rf", "gate-rf", "anomaly", None, settings)
    assert [m.version for m in (champion, retrained, few_rows, flipped, no_signal)] == ["1", "2", "3", "4", "5"]

    capsys.readouterr()
    # the latency ratio is not this test's subject (see NOISY_MACHINE)
    assert _gate(settings, "gate-rf", "--challenger", retrained.version, *NOISY_MACHINE) == 0
    out = capsys.readouterr().out
    assert "v2 (challenger) vs v1" in out and f"{len(split.test)} rows" in out
    for bad, gate in ((few_rows, "probabilities"), (flipped, "regression")):
        assert _gate(settings, "gate-rf", "--challenger", bad.version) == 1, f"v{bad.version} passed"
        out = capsys.readouterr().out
        assert [ln for ln in out.splitlines() if gate in ln and "FAIL" in ln], out
    # permuted labels moved the split: the holdout shrinks to rows neither run saw
    assert _gate(settings, "gate-rf", "--challenger", no_signal.version) == 1
    assert "regression" in capsys.readouterr().out
    assert _gate(settings, "gate-rf", "--challenger", champion.version) == 2  # v1 against itself
    assert _gate(settings, "gate-rf", "--challenger", "77") == 2


@pytest.mark.timeout(300)
def test_gate_train_passes_a_retrained_iforest_on_a_fresh_store(tmp_path, capsys):
    """What `make gate` runs, for the family the test above does not train: `stackserve gate --train`
    on an empty store trains a champion and a retrained challenger (next seed), and every gate passes
    (regression, drift; the latency ratio is measured with its limit out of the way: NOISY_MACHINE)."""
    from server.cli import main

    capsys.readouterr()
    code = main(["--data-dir", str(tmp_path), "gate", "--train", "--model", "shuttle-iforest", *NOISY_MACHINE])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "v2 (challenger) vs v1" in out
    cells = [[cell.strip() for cell in ln.split("│")[1:-1]] for ln in out.splitlines() if ln.startswith("│")]
    rows = [row for row in cells if len(row) > 1 and row[1]]  # a wrapped cell continues on a row of its own
    assert rows and all(result == "pass" for _, result, *_ in rows), out
    for gate in ("regression", "latency", "drift"):
        assert any(name.startswith(gate) for name, *_ in rows), (gate, out)


def test_gate_holdout_never_includes_rows_either_model_saw(settings):
    from server.anomaly.gates import seen_rows, unseen_holdout

    df = load_shuttle()
    a = train_family(df, "iforest", "holdout-check", "anomaly", None, settings)
    settings.training.split_seed += 1  # a challenger with another split (the old leak)
    try:
        b = train_family(df, "iforest", "holdout-check", "anomaly", None, settings)
    finally:
        settings.training.split_seed -= 1
    client = registry.connect(settings)
    for run in (a, b):
        _, seen = seen_rows(client, run.run_id)
        assert np.array_equal(seen, np.union1d(run.split.train, run.split.validation))
    holdout = unseen_holdout(client, [a.run_id, b.run_id], df).index.to_numpy()
    assert np.array_equal(holdout, np.intersect1d(a.split.test, b.split.test))
    assert 0 < len(holdout) < min(len(a.split.test), len(b.split.test))
    # a run trained on another table cannot vouch for Shuttle rows
    other = train_family(df.iloc[: len(df) // 2], "iforest", "holdout-check", "anomaly", None, settings)
    from server.anomaly.gates import GateInputError

    with pytest.raises(GateInputError, match="--holdout"):
        unseen_holdout(client, [a.run_id, other.run_id], df)


def test_gate_on_a_users_own_model_and_labelled_holdout(settings, tmp_path, capsys):
    """Any registered raw-feature model, gated on the user's own file: `--holdout FILE --label COL`."""
    from sklearn.datasets import make_classification

    # a holdout large enough that F1 moves by < 0.002 between retrained seeds (measured), under the 0.01 limit
    X, y = make_classification(n_samples=40000, n_features=6, n_informative=4, weights=[0.92], flip_y=0.0,
                               class_sep=2.0, random_state=7)
    frame = pd.DataFrame(X, columns=[f"sensor_{i}" for i in range(6)]).assign(fraud=y)
    train, holdout = frame.iloc[:20000], frame.iloc[20000:]
    holdout.to_csv(tmp_path / "holdout.csv", index=False)
    champion = train_family(train, "rf", "user-rf", "fraud", None, settings)
    settings.training.seed += 1
    try:
        challenger = train_family(train, "rf", "user-rf", "fraud", None, settings)
    finally:
        settings.training.seed -= 1
    rng = np.random.default_rng(1)
    broken = train_family(train.assign(fraud=rng.permutation(train["fraud"].to_numpy())), "rf", "user-rf", "fraud",
                          None, settings)
    assert (champion.version, challenger.version, broken.version) == ("1", "2", "3")
    # the latency ratio is not what this test is about: a CI run measured 1.28x between two seeds of this
    # forest with the session server running (see NOISY_MACHINE)
    args = ["--holdout", str(tmp_path / "holdout.csv"), "--label", "fraud", *NOISY_MACHINE]
    capsys.readouterr()
    assert _gate(settings, "user-rf", "--challenger", "2", *args) == 0
    assert "holdout:" in capsys.readouterr().out
    assert _gate(settings, "user-rf", "--challenger", "3", *args) == 1
    # without a holdout of its own, the built-in data cannot stand in for the user's model
    capsys.readouterr()
    assert _gate(settings, "user-rf", "--challenger", "2") == 2
    assert "--holdout" in capsys.readouterr().err
    assert _gate(settings, "user-rf", "--challenger", "2", "--holdout", str(tmp_path / "holdout.csv")) == 2
    assert "lacks column" in capsys.readouterr().err


def test_training_user_data_without_entities_skips_the_stream_family(settings):
    from server.anomaly.training import train_default

    df = load_shuttle().iloc[:3000]
    settings.training.name_prefix = "noentity"
    try:
        results = train_default(settings, data=df, families=None)
        assert sorted(r.family for r in results) == ["iforest", "rf"]
        with pytest.raises(ValueError, match="entity column"):
            train_default(settings, data=df, families=["rf-stream"])
    finally:
        settings.training.name_prefix = "shuttle"
