"""Every remote call and cross-thread wait made for a request is bounded by what is left of the
request's deadline, not only by a configured bound: a replica that hangs costs the caller its own
deadline and no more, and a batch call nobody waits for any longer gives its slot back."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from server.batching.coalescer import DISPATCH_SLACK_S, Coalescer
from server.gateway.ray_errors import ReplicaTimeoutError, bounded
from server.gateway.request_context import DEADLINE, set_deadline, time_left


def test_time_left_is_the_shorter_of_the_bound_and_the_deadline():
    assert time_left(5.0) == 5.0  # no deadline in this context
    token = set_deadline(0.5)
    try:
        assert 0.4 < time_left(5.0) <= 0.5
        assert time_left(0.1) == 0.1
    finally:
        DEADLINE.reset(token)
    token = set_deadline(-1.0)  # already past
    try:
        assert time_left(5.0) == 0.0
    finally:
        DEADLINE.reset(token)
    assert set_deadline(None) is not None and time_left(3.0) == 3.0  # the caller set none


def test_a_hung_replica_call_ends_at_the_callers_deadline_not_the_bound():
    async def main():
        set_deadline(0.2)
        hung = asyncio.get_running_loop().create_future()  # a handle call that never answers
        t0 = time.monotonic()
        with pytest.raises(ReplicaTimeoutError, match="the caller's deadline"):
            await bounded(hung, 30.0, "Embedder.encode")
        assert time.monotonic() - t0 < 1.0

    asyncio.run(main())


def test_a_batch_call_past_every_deadline_is_abandoned_and_frees_its_slot():
    calls = []

    async def dispatch(key, rows, counts, tags):
        calls.append(len(counts))
        if len(calls) == 1:
            await asyncio.Event().wait()  # the first call hangs for ever
        return [float(rows.shape[0])] * len(counts)

    async def main():
        co = Coalescer(dispatch, max_batch_rows=8, max_wait_s=0.0, max_inflight=1)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            await co.submit("m", np.ones((1, 1)), timeout=0.2)
        assert time.monotonic() - t0 < 1.0  # the caller got its answer at its deadline
        # the next request is served once the hung call's slot is given back (deadline + slack)
        assert await co.submit("m", np.ones((2, 1)), timeout=DISPATCH_SLACK_S + 5) == 2.0
        assert time.monotonic() - t0 < 0.2 + DISPATCH_SLACK_S + 2
        await co.close()

    asyncio.run(main())
