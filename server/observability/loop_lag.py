"""How late the event loop runs what it was asked to run: the one number that says whether
something blocks it.

A task sleeps ``interval_s`` and measures how much later than asked it woke. Everything on the loop
(every gRPC call, HTTP request, stream chunk) waits at least that long behind whatever held the
loop, so a synchronous call that slipped onto it (a model scored inline, a file rotated, a
``.result()`` on a cross-thread future) shows up here as a spike. Exported as
``stackserve_event_loop_lag_seconds`` (a histogram, by loop) and kept as a running maximum that
tests read. A watchdog thread logs the loop thread's stack once per stall that outlasts
``report_after_s``: a spike then names its cause instead of only being counted.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field

from server.observability.metrics import EVENT_LOOP_LAG

log = logging.getLogger("stackserve.loop_lag")
_RUNNING: LoopLagProbe | None = None  # the gateway's probe, while it runs


def recent_lag_s() -> float:
    """How long a call arriving now waits for the gateway's loop (0 with no probe running): the part
    of a request's latency spent before its handler, which admission estimates must count."""
    probe = _RUNNING
    return probe.recent_lag_s if probe is not None else 0.0


@dataclass
class LoopLagProbe:
    """Start with ``start()`` on the loop to watch; ``reset()`` starts a new measuring window."""

    name: str = "gateway"
    interval_s: float = 0.01
    max_lag_s: float = 0.0
    samples: int = 0
    recent_lag_s: float = 0.0  # moving average: what a request arriving now waits before its handler runs
    report_after_s: float = 0.05
    _task: asyncio.Task | None = None
    _tick: float = field(default_factory=time.perf_counter)
    _stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> asyncio.Task:
        global _RUNNING
        _RUNNING = self
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"loop-lag-{self.name}")
        loop_thread = threading.get_ident()
        threading.Thread(target=self._watch, args=(loop_thread,), name=f"loop-watch-{self.name}", daemon=True).start()
        return self._task

    def reset(self) -> None:
        self.max_lag_s, self.samples = 0.0, 0

    def stop(self) -> None:
        global _RUNNING
        if _RUNNING is self:
            _RUNNING = None
        self._stopped.set()
        if self._task is not None:
            self._task.cancel()

    def _watch(self, loop_thread: int) -> None:
        """Log where the loop thread is when it has not ticked for ``report_after_s`` (once per stall)."""
        reported = 0.0
        while not self._stopped.wait(self.interval_s):
            late = time.perf_counter() - self._tick - self.interval_s
            if late < self.report_after_s or reported == self._tick:
                continue
            frame = sys._current_frames().get(loop_thread)
            if frame is None:
                return
            reported = self._tick
            stack = "".join(traceback.format_stack(frame, limit=12))
            log.warning("the %s event loop has been held for %.0f ms; it is at:\n%s", self.name, late * 1e3, stack)

    async def _run(self) -> None:
        histogram = EVENT_LOOP_LAG.labels(self.name)
        while True:
            asked = self._tick = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, time.perf_counter() - asked - self.interval_s)
            histogram.observe(lag)
            self.recent_lag_s = 0.8 * self.recent_lag_s + 0.2 * lag
            self.samples += 1
            if lag > self.max_lag_s:
                self.max_lag_s = lag
