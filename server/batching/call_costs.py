"""What one call into the scorers costs, by its size: the unit admission counts work ahead in.

A call's time is not proportional to its rows: a fixed part (the crossing into Ray, serialisation,
~3 ms here) dominates small calls, the rows dominate large ones. Counting rows at one rate made a
queue of small requests (which leave in one call) look many times longer than it is and refused
normal load; counting calls at one time would do the opposite for large ones. So the coalescer
keeps, per power-of-two size class, the fastest recent time of a call of that size (a minimum that
drifts up slowly, so overload does not stretch the unloaded estimate), and reads a size between
classes by linear interpolation: below the smallest class a call costs the smallest class's time
(all fixed part), above the largest it grows in proportion to its rows.
"""

from __future__ import annotations

import math

import numpy as np

#: per observation, how far the fastest time of a class may drift up toward slower calls (so a
#: machine that got slower for good is followed, over a few hundred calls)
DRIFT = 1.005


class CallCosts:
    def __init__(self) -> None:
        self._rows: dict[int, float] = {}  # size class -> mean rows of the calls in it (moving)
        self._fastest: dict[int, float] = {}  # size class -> fastest recent seconds per call
        # (rows, seconds) points sorted by rows, monotone in seconds: rebuilt when a call is observed,
        # not on every estimate (admission reads several per request)
        self._points: tuple[np.ndarray, np.ndarray] | None = None

    def __bool__(self) -> bool:
        return bool(self._fastest)

    def observe(self, rows: int, seconds: float) -> None:
        """One call of ``rows`` rows took ``seconds`` (its wall time, dispatch to results)."""
        if rows <= 0 or not math.isfinite(seconds) or seconds <= 0:
            return
        c = max(0, int(rows - 1).bit_length())  # 1 -> 0, 2 -> 1, 3-4 -> 2, ...
        old = self._fastest.get(c)
        self._fastest[c] = seconds if old is None else min(seconds, old * DRIFT)
        r = self._rows.get(c)
        self._rows[c] = float(rows) if r is None else 0.9 * r + 0.1 * rows
        self._points = None

    def seconds(self, rows: int) -> float | None:
        """The expected time of one call of ``rows`` rows on an unloaded scorer (None: nothing seen)."""
        if not self._fastest or rows <= 0:
            return 0.0 if self._fastest else None
        if self._points is None:
            classes = sorted(self._fastest)
            xs = np.asarray([self._rows[c] for c in classes])
            ys = np.asarray([self._fastest[c] for c in classes])
            order = np.argsort(xs, kind="stable")
            self._points = xs[order], np.maximum.accumulate(ys[order])  # a larger call never costs less
        xs, ys = self._points
        if rows > xs[-1]:
            return float(ys[-1] * rows / xs[-1])
        return float(np.interp(rows, xs, ys))
