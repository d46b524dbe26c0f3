"""The streaming drift monitor on synthetic data with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from server.anomaly.reference import ReferenceProfile
from server.drift.monitor import DriftMonitor, DriftStatus

NAMES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 3))
    return ReferenceProfile.fit(X, NAMES, rng.uniform(size=5_000), sample_rows=4_000)


def monitor(reference, **kw) -> DriftMonitor:
    return DriftMonitor("m", reference, window=2048, min_events=200, **kw)


def test_no_verdict_before_min_events(reference):
    mon = monitor(reference)
    mon.observe(np.zeros((10, 3)), np.zeros(10))
    report = mon.evaluate()
    assert not report.ready and report.status == DriftStatus.OK and report.n_events == 10


def test_unshifted_traffic_is_ok_and_shifted_feature_alerts(reference):
    rng = np.random.default_rng(1)
    mon = monitor(reference)
    mon.observe(rng.normal(size=(2048, 3)), rng.uniform(size=2048))
    ok = mon.evaluate()
    assert ok.ready and ok.status == DriftStatus.OK, (ok.psi, ok.ks_pvalue)
    shifted = rng.normal(size=(2048, 3))
    shifted[:, 1] += 1.0
    mon.observe(shifted, rng.uniform(size=2048))  # replaces the whole window
    bad = mon.evaluate()
    assert bad.status == DriftStatus.ALERT
    assert bad.top[0]["feature"] == "b" and bad.psi[1] > 0.25 and bad.ks_pvalue[1] < 1e-6
    assert bad.psi[0] < 0.1


def test_score_distribution_drift_alone_alerts(reference):
    rng = np.random.default_rng(2)
    mon = monitor(reference)
    mon.observe(rng.normal(size=(1000, 3)), rng.uniform(size=1000) ** 4)
    report = mon.evaluate()
    assert report.status == DriftStatus.ALERT and report.score_psi > 0.25 and not report.top


def test_memory_is_bounded_and_ring_keeps_newest(reference):
    mon = monitor(reference)
    for i in range(5):
        mon.observe(np.full((1000, 3), float(i)), np.zeros(1000))
    assert mon.n_events == 2048 and mon._rows.shape == (2048, 3)
    values, counts = np.unique(mon._rows[:, 0], return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist(), strict=True)) == {2.0: 48, 3.0: 1000, 4.0: 1000}
    mon.observe(np.full((5000, 3), 9.0), np.zeros(5000))  # larger than the window: newest kept
    assert set(np.unique(mon._rows)) == {9.0}


def test_reference_round_trip(tmp_path, reference):
    reference.save(tmp_path / "ref.npz")
    back = ReferenceProfile.load(tmp_path / "ref.npz")
    assert back.feature_names == NAMES
    for a, b in zip(back.edges, reference.edges, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.sorted_columns, reference.sorted_columns)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="malformed reference"):
        ReferenceProfile.load(tmp_path / "bad.npz")
