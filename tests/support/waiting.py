"""Waiting in tests: every wait polls a condition against a deadline and fails naming what it waited for.

A bare ``time.sleep`` as synchronisation is either too short on a loaded 2-core machine (a flake) or
too long everywhere else (a slow suite); polling a condition is neither.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold within the deadline (an AssertionError: a test failure, not an error)."""


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Call ``check`` until it returns something truthy (returned) or ``timeout`` s pass (``WaitTimeout``).

    Exceptions from ``check`` propagate: a probe that fails loudly is not a condition still pending.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not within {timeout:g} s (last value {result!r})")
        time.sleep(interval)


async def async_wait_until(
    check: Callable[[], Awaitable[T]], timeout: float, what: str, interval: float = 0.05
) -> T:
    """``wait_until`` for a coroutine probe, yielding the event loop between tries."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not within {timeout:g} s (last value {result!r})")
        await asyncio.sleep(interval)


async def poll_async(cond: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """``wait_until`` for a synchronous condition polled from async code (an attribute, a counter).

    ``wait_until`` would block the event loop in ``time.sleep``, so what the test waits for (work
    scheduled on that same loop) could never happen; this sleeps with ``asyncio.sleep`` instead.
    """

    async def check() -> T:
        return cond()

    return await async_wait_until(check, timeout, what, interval)
