"""Safe rollout of a challenger model version: canary and shadow, automatic rollback and promotion.

``router.py`` picks an arm per request (stable hash); ``controller.py`` keeps per-arm sliding
windows and decides running → rolled_back | promoted off the request path. The gateway
(``server/gateway/anomaly_service.py``) does the calls; the scorer serves the challenger under
its own key, :func:`challenger_key`, so the coalescer and the replica batch it separately.
"""

from __future__ import annotations


def challenger_key(name: str, version: str) -> str:
    """The served key of a challenger version: ``NAME@vVERSION`` (never a client-visible model name)."""
    return f"{name}@v{version}"


def parse_challenger_key(key: str) -> tuple[str, str] | None:
    """``(name, version)`` for a challenger key, None for a plain model name."""
    name, sep, version = key.rpartition("@v")
    return (name, version) if sep and name and version else None
