"""The drift loop: one DriftMonitor per served model, fed on the request path, evaluated off it.

``observe`` runs on the event loop for every scored batch and only copies rows into the monitor's
ring buffer; ``run`` recomputes every model's report every ``drift.interval_s`` in a worker thread
(PSI/KS over thousands of rows would stall every in-flight request) and publishes it
(server/drift/publish.py: gauges, and one log event when a model's status rises).
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from server.anomaly.catalog import CatalogEntry
from server.config import DriftConfig
from server.drift.monitor import DriftMonitor, DriftStatus
from server.drift.publish import publish
from server.executors import HOUSEKEEPING, run_in

log = logging.getLogger("stackserve.drift")


class DriftLoop:
    def __init__(self, cfg: DriftConfig) -> None:
        self.cfg = cfg
        self.monitors: dict[str, DriftMonitor] = {}
        self.status: dict[str, DriftStatus] = {}

    def watch(self, entry: CatalogEntry) -> None:
        """Start monitoring a served model that carries a training reference (once per name)."""
        cfg = self.cfg
        if not cfg.enabled or entry.reference is None or entry.name in self.monitors:
            return
        self.monitors[entry.name] = DriftMonitor(
            entry.name, entry.reference, cfg.window_events, cfg.min_events, cfg.psi_warn, cfg.psi_alert, cfg.ks_alpha
        )
        self.status[entry.name] = DriftStatus.OK

    def observe(self, model: str, X: np.ndarray, scores: np.ndarray) -> None:
        monitor = self.monitors.get(model)
        if monitor is not None:
            monitor.observe(X, scores)

    async def run(self) -> None:
        """Evaluate and publish every interval, until cancelled."""
        while True:
            await asyncio.sleep(self.cfg.interval_s)
            for name, monitor in list(self.monitors.items()):
                try:
                    report = await run_in(HOUSEKEEPING, monitor.evaluate)
                except Exception:  # a broken window must not stop monitoring of the others
                    log.exception("drift evaluation failed for %s", name)
                    continue
                self.status[name] = publish(report, self.status[name])
