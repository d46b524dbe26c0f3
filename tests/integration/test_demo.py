"""`make demo` tells the truth: it exits non-zero when a workload it exercises fails.

Runs the demo in this process without Ray (the Ray path shares the same failure accounting:
``server.demo._demo``) against the session's trained store.
"""

from __future__ import annotations

import pytest

from server.config import load_settings
from server.demo import run_demo

pytestmark = pytest.mark.integration


def _settings(settings, **llm):
    return load_settings(None, data_dir=str(settings.data_dir),
                         gateway={"port": 0, "metrics_port": 0, "openai_port": 0}, llm=llm)


def test_demo_fails_when_the_llm_cannot_serve(trained, settings, capsys):
    # TensorRT is not installed here: a real start failure, as a missing or broken build would be
    assert run_demo(_settings(settings, backend="tensorrt"), use_ray=False) == 1
    out = capsys.readouterr().out
    assert "llm failed" in out and "demo FAILED" in out
    assert "held-out slice" in out  # the anomaly workload still ran and reported


def test_demo_passes_when_every_exercised_workload_works(trained, settings, capsys):
    assert run_demo(_settings(settings, enabled=False), use_ray=False) == 0
    out = capsys.readouterr().out
    assert "chat not exercised" in out and "every workload answered" in out
