"""Shared fixtures: one trained, registered model store per test session.

Training all three model families into a real MLflow store (sqlite + local
artifacts) takes tens of seconds, so it happens once and every test that needs
registered models (training checks, the in-process gateway, the Ray app) shares it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import torch  # importing torch does not import triton (see TRITON_INTERPRET below)

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# transformers (the reference some tests hold our models to) must not reach for Hugging Face's hub
# kernels: that package's import name is our top-level `kernels` (docs/testing.md).
os.environ.setdefault("USE_HUB_KERNELS", "NO")
# Ray's machine-global state (/tmp/ray: the "cluster running on this machine" record, session dirs)
# stays out of the tests' way both ways: no test joins a developer's cluster by accident, and no test
# leaves a record there. Every Ray process the tests start inherits this private directory.
_RAY_TMPDIR = None
if "RAY_TMPDIR" not in os.environ:
    _RAY_TMPDIR = os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="sst-", dir="/tmp")  # short: socket paths


# Before anything imports triton (``import torch._dynamo`` does): triton decorates its own helpers
# for the interpreter only when TRITON_INTERPRET=1 is set at its first import, and without a GPU the
# Triton kernel tests run in the interpreter on the CPU. Servers the tests start get it removed.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from tests.support import compiled, hypothesis_profiles  # noqa: E402

HYPOTHESIS_PROFILE = hypothesis_profiles.load()


def pytest_report_header(config: pytest.Config) -> list[str]:
    """The CPU and the ISA paths this run takes, so a result always says what it ran on."""
    return [*compiled.report_lines(), f"hypothesis profile: {HYPOTHESIS_PROFILE}"]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under CI=true a compiled kernel that does not import fails the run before any test: CI must not
    pass on a fallback backend that users of a built wheel never get."""
    if compiled.in_ci():
        missing = compiled.import_errors()
        if missing:
            lines = "\n".join(f"  {m} ({compiled.COMPILED[m]}): {why}" for m, why in missing.items())
            pytest.exit(f"CI=true: compiled kernels missing, refusing to test a fallback:\n{lines}", returncode=3)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _RAY_TMPDIR is not None:
        shutil.rmtree(_RAY_TMPDIR, ignore_errors=True)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Skips grouped by reason: which tests this CPU (or this machine: no GPU, no TensorRT) could not run."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: Counter[str] = Counter()
    for report in skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    terminalreporter.section("skipped, by reason")
    for line in compiled.report_lines()[:2]:
        terminalreporter.write_line(line)
    for reason, n in reasons.most_common():
        terminalreporter.write_line(f"{n:4d}  {reason}")


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
    after the rest, so no other test sees a restarted replica's fresh state; the shutdown test
    (``stops_server``) stops that server, so it runs last of all. A stable sort by marker: the order
    does not depend on file names."""
    items.sort(key=lambda item: (item.get_closest_marker("stops_server") is not None,
                                 item.get_closest_marker("disruptive") is not None))
