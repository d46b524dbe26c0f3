"""Hypothesis profiles: ``dev`` (hypothesis' defaults), ``ci`` (fewer examples), ``thorough`` (nightly-style).

The profile comes from ``HYPOTHESIS_PROFILE``, else ``ci`` when ``CI=true``, else ``dev``. Tests that
choose their own example count write ``max_examples=examples(N)``: ``N`` under ``dev``, scaled by the
profile's ``max_examples`` against hypothesis' default of 100 otherwise, so a test that asked for more
examples than its neighbours keeps asking for more under every profile.
"""

from __future__ import annotations

import math
import os

from hypothesis import HealthCheck, settings

DEFAULT_EXAMPLES = 100
PROFILES = {
    "dev": {"max_examples": DEFAULT_EXAMPLES},
    "ci": {"max_examples": 40, "derandomize": True, "print_blob": True},
    "thorough": {"max_examples": 1000, "suppress_health_check": [HealthCheck.too_slow]},
}


def load() -> str:
    """Register the profiles and load the chosen one (called from ``tests/conftest.py``)."""
    for name, kw in PROFILES.items():
        settings.register_profile(name, deadline=None, **kw)
    default = "ci" if os.environ.get("CI", "").lower() == "true" else "dev"
    chosen = os.environ.get("HYPOTHESIS_PROFILE", default)
    if chosen not in PROFILES:
        raise ValueError(f"HYPOTHESIS_PROFILE={chosen!r}: choose one of {sorted(PROFILES)}")
    settings.load_profile(chosen)
    return chosen


def examples(n: int) -> int:
    """A test's own example count ``n`` scaled to the loaded profile (at least 1)."""
    return max(1, math.ceil(n * settings.default.max_examples / DEFAULT_EXAMPLES))
