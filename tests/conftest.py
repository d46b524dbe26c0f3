"""Shared fixtures: one trained, registered model store per test session.

Training all three model families into a real MLflow store (sqlite + local
artifacts) takes tens of seconds, so it happens once and every test that needs
registered models (training checks, the in-process gateway, the Ray app) shares it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stackserve-data")


@pytest.fixture(scope="session")
def settings(store_dir: Path):
    from server.config import load_settings

    return load_settings(None, data_dir=str(store_dir))


@pytest.fixture(scope="session")
def trained(settings):
    """Train and register shuttle-iforest, shuttle-rf and shuttle-rf-stream once."""
    from server.anomaly.training import train_default

    return {r.name: r for r in train_default(settings)}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Chaos drills (``disruptive``) kill replicas of the server the whole session shares: they run
    last, so no other test sees a restarted replica's fresh state."""
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)  # stable sort
