"""The gateway's SLO tracker from the settings: the objectives file and the deployments' prices."""

from __future__ import annotations

from server.config import Settings
from server.slo.cost import hourly_cost
from server.slo.exporter import register
from server.slo.objectives import load_slo_file
from server.slo.tracker import SloTracker


def build_tracker(settings: Settings) -> SloTracker | None:
    """None when ``slo.enabled`` is off; a bad SLO file fails the start with the file and the field."""
    if not settings.slo.enabled:
        return None
    slo = load_slo_file(settings.slo.file)
    register()
    return SloTracker(slo, hourly_cost(settings, slo.prices))
