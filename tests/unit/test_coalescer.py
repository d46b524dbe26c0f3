"""The gateway's coalescer: merging, limits, deadlines, cancellation and failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np
import pytest

from server.batching import BatchQueueFullError, Coalescer
from server.batching.coalescer import REFUSING_HOLD_S
from tests.support.waiting import poll_async


class Recorder:
    """A dispatch target that records batches and echoes row sums per item."""

    def __init__(self, delay: float = 0.0, fail: Exception | None = None, wrong_count: bool = False):
        self.batches: list[tuple[int, int]] = []
        self.delay = delay
        self.fail = fail
        self.wrong_count = wrong_count
        self.gate: asyncio.Event | None = None

    async def __call__(self, key, rows, counts, tags):
        self.batches.append((int(rows.shape[0]), len(counts)))
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)  # the dispatch's service time: the workload, not synchronisation
        if self.fail:
            raise self.fail
        out, start = [], 0
        for n in counts:
            out.append(float(rows[start : start + n].sum()))
            start += n
        return out[:-1] if self.wrong_count else out


def run(coro):
    return asyncio.run(coro)


async def _until(cond: Callable[[], object], what: str) -> None:
    """The coalescer reached a state (its loop runs on this event loop): polled, with a deadline."""
    await poll_async(cond, 10, what, interval=0.001)


def test_concurrent_requests_share_batches_and_get_their_own_results():
    async def main():
        rec = Recorder()
        co = Coalescer(rec, max_batch_rows=1000, max_wait_s=0.05)
        xs = [np.full((1, 3), i, dtype=np.float32) for i in range(50)]
        got = await asyncio.gather(*[co.submit("m", x) for x in xs])
        await co.close()
        return rec, got

    rec, got = run(main())
    assert got == [3.0 * i for i in range(50)]
    assert sum(n for n, _ in rec.batches) == 50
    assert len(rec.batches) < 50  # merged


def test_batches_never_exceed_max_rows_but_take_at_least_one_item():
    async def main():
        rec = Recorder()
        co = Coalescer(rec, max_batch_rows=10, max_wait_s=0.01)
        sizes = [4, 4, 4, 25, 1]
        got = await asyncio.gather(*[co.submit("m", np.ones((n, 2))) for n in sizes])
        await co.close()
        return rec, got

    rec, got = run(main())
    assert got == [2.0 * n for n in [4, 4, 4, 25, 1]]
    assert all(n <= 10 or reqs == 1 for n, reqs in rec.batches)
    assert (25, 1) in rec.batches


def test_keys_are_batched_separately():
    async def main():
        seen = []

        async def dispatch(key, rows, counts, tags):
            seen.append(key)
            return [key] * len(counts)

        co = Coalescer(dispatch, max_wait_s=0.01)
        got = await asyncio.gather(co.submit("a", np.ones((1, 1))), co.submit("b", np.ones((1, 1))))
        await co.close()
        return got, seen

    got, seen = run(main())
    assert got == ["a", "b"] and sorted(seen) == ["a", "b"]


def test_full_queue_sheds_load():
    async def main():
        rec = Recorder()
        rec.gate = asyncio.Event()
        co = Coalescer(rec, max_batch_rows=4, max_wait_s=0.0, max_queue_rows=8, max_inflight=1)
        first = [asyncio.create_task(co.submit("m", np.ones((4, 1))))]
        await _until(lambda: len(rec.batches) == 1, "the first batch stuck in dispatch")
        first += [asyncio.create_task(co.submit("m", np.ones((4, 1)))) for _ in range(2)]
        await _until(lambda: co.queued_rows == 8, "8 rows queued behind it")
        with pytest.raises(BatchQueueFullError, match="limit 8"):
            await co.submit("m", np.ones((1, 1)))
        rec.gate.set()
        got = await asyncio.gather(*first)
        await co.close()
        return got

    assert run(main()) == [4.0, 4.0, 4.0]


def test_admission_by_expected_queueing_time():
    """Once a call has been timed, a request that would wait longer than max_queue_delay_s behind the
    queue is refused at once, naming both; a lone request (empty queue) is never refused."""

    async def main():
        rec = Recorder(delay=0.05)  # 4 rows per 50 ms: 80 rows/s
        co = Coalescer(rec, max_batch_rows=4, max_wait_s=0.0, max_queue_rows=1000, max_inflight=1,
                       max_queue_delay_s=0.08)
        assert await co.submit("m", np.ones((4, 1))) == 4.0  # timed: ~80 rows/s
        assert co.rows_per_s == pytest.approx(80, rel=0.5)
        rec.gate = asyncio.Event()
        held = [asyncio.create_task(co.submit("m", np.ones((4, 1))))]
        await _until(lambda: len(rec.batches) == 2, "the held call in dispatch, at the gate")
        held.append(asyncio.create_task(co.submit("m", np.ones((4, 1)))))  # nothing queued ahead: admitted
        await _until(lambda: co.queued_rows == 4, "the admitted call queued")
        with pytest.raises(BatchQueueFullError, match=r"expected queueing .* over the limit of 80 ms"):
            # 4 queued ahead + its own 4 at <= 80 rows/s: >= 100 ms
            await asyncio.wait_for(co.submit("m", np.ones((4, 1))), 5)
        rec.gate.set()
        assert await asyncio.gather(*held) == [4.0, 4.0]
        assert co.expected_wait_s() is None  # nothing queued: the next request goes at once
        await co.close()

    run(main())


def test_relative_admission_counts_the_calls_ahead_in_flight_or_queued():
    """admission_factor 2, once a queue stands: the calls ahead (the one in dispatch counts as much as
    a queued one) may take about as long as the request's own call plus the floor; a large request
    may wait longer than a small one behind the same work. Refusals come at once, before anything is
    queued."""

    async def main():
        rec = Recorder(delay=0.05)  # every call ~50 ms, whatever its rows
        co = Coalescer(rec, max_batch_rows=4, max_wait_s=0.0, max_queue_rows=1000, max_inflight=1,
                       admission_factor=2.0, admission_floor_s=0.01)
        assert co.relative_wait_s(4) == (None, None)  # nothing timed yet: admit
        assert await co.submit("m", np.ones((4, 1))) == 4.0  # timed: a 4-row call
        call = co.costs.seconds(4)
        assert call == pytest.approx(0.05, rel=0.5)
        assert co.relative_wait_s(8) == (None, None)  # nothing stands in the queue
        rec.gate = asyncio.Event()
        held = [asyncio.create_task(co.submit("m", np.ones((4, 1))))]
        await _until(lambda: len(rec.batches) == 2, "the held call in dispatch, at the gate")
        assert co.relative_wait_s(1) == (None, None)  # nothing queued: no standing queue
        held.append(asyncio.create_task(co.submit("m", np.ones((4, 1)))))  # not standing yet: admitted
        await _until(lambda: co.queued_rows == 4, "the admitted call queued")
        assert co.queue_is_standing()  # a whole call's worth waits behind the call in flight
        ahead, allowed = co.relative_wait_s(1)
        assert ahead == pytest.approx(2 * call)  # the call in dispatch counts as much as the queued one
        assert allowed == pytest.approx(call + 0.01)  # (factor - 1) x its own call + the floor
        t0 = time.monotonic()
        with pytest.raises(BatchQueueFullError, match="while the queue stands"):
            await co.submit("m", np.ones((1, 1)))  # two calls ahead (a full batch queued) vs one + the floor
        assert time.monotonic() - t0 < 0.02  # at once: not after waiting in the queue
        assert co.queued_rows == 4  # the refused request left nothing behind
        held.append(asyncio.create_task(co.submit("m", np.ones((8, 1)))))  # 2 calls ahead vs its own 2x
        await _until(lambda: co.queued_rows == 12, "the large request queued")
        with pytest.raises(BatchQueueFullError):
            await co.submit("m", np.ones((4, 1)))  # four calls ahead
        rec.gate.set()
        assert await asyncio.gather(*held) == [4.0, 4.0, 8.0]
        await co.close()

    run(main())


def test_a_request_joining_the_queued_batch_waits_only_for_the_calls_in_flight():
    """Four clients of small requests leave in one call: the partial batch a request joins is not work
    ahead of it (only what joining adds to its call), another key's is."""

    async def main():
        rec = Recorder(delay=0.05)
        co = Coalescer(rec, max_batch_rows=64, max_wait_s=0.0, max_queue_rows=1000, max_inflight=1,
                       admission_factor=2.0, admission_floor_s=0.01)
        assert await co.submit("m", np.ones((1, 1))) == 1.0
        co.costs.observe(64, co.costs.seconds(1))  # calls up to 64 rows cost the same here
        call = co.costs.seconds(1)
        rec.gate = asyncio.Event()
        held = [asyncio.create_task(co.submit("m", np.ones((1, 1))))]
        await _until(lambda: len(rec.batches) == 2, "the held call in dispatch, at the gate")
        held += [asyncio.create_task(co.submit("m", np.ones((1, 1)))) for _ in range(3)]
        await _until(lambda: co.queued_rows == 3, "three queued in one partial batch")
        assert co.relative_wait_s(1, "m") == (None, None)  # a burst that fits one call: not standing
        co._refused_at = time.monotonic()  # as if the rule had just refused someone (it holds a second)
        assert co.relative_wait_s(1, "m")[0] == pytest.approx(call)  # joins: only the call in flight
        assert co.relative_wait_s(1, "other")[0] == pytest.approx(2 * call)  # another key's call is ahead
        held.append(asyncio.create_task(co.submit("m", np.ones((1, 1)))))
        rec.gate.set()
        assert await asyncio.gather(*held) == [1.0] * 5
        await co.close()

    run(main())


def test_a_burst_that_fits_one_call_is_never_refused_a_refusal_holds_the_rule_on():
    """Overload, not a burst: 120 small requests at once behind a slow call leave in one call and
    are all admitted; the rule stands once a whole call's worth waits, and a refusal keeps it on for
    REFUSING_HOLD_S even after the queue is short again."""

    async def main():
        rec = Recorder(delay=0.03)
        co = Coalescer(rec, max_batch_rows=1000, max_wait_s=0.0, max_queue_rows=100_000, max_inflight=1,
                       admission_factor=2.0, admission_floor_s=0.001)
        assert await co.submit("m", np.ones((5, 1))) == 5.0  # timed
        rec.gate = asyncio.Event()
        burst = [asyncio.create_task(co.submit("m", np.ones((5, 1))))]
        await _until(lambda: len(rec.batches) == 2, "a call in flight")
        burst += [asyncio.create_task(co.submit("m", np.ones((5, 1)))) for _ in range(120)]
        await _until(lambda: co.queued_rows == 600, "120 requests queued behind it")
        assert not co.queue_is_standing()
        rec.gate.set()
        assert await asyncio.gather(*burst) == [5.0] * 121  # nobody refused
        rec.gate = asyncio.Event()
        calls = len(rec.batches)
        held = [asyncio.create_task(co.submit("m", np.ones((5, 1))))]
        await _until(lambda: len(rec.batches) == calls + 1, "a call in flight")
        held.append(asyncio.create_task(co.submit("m", np.ones((1000, 1)))))  # a whole call's worth
        await _until(lambda: co.queued_rows == 1000, "a full call queued")
        assert co.queue_is_standing()
        with pytest.raises(BatchQueueFullError):
            await co.submit("m", np.ones((5, 1)))
        rec.gate.set()
        await asyncio.gather(*held)
        assert co.queued_rows == 0 and co.queue_is_standing()  # held on by the refusal
        assert not co.queue_is_standing(time.monotonic() + REFUSING_HOLD_S)
        await co.close()

    run(main())


def test_expired_items_are_dropped_before_dispatch():
    async def main():
        rec = Recorder()
        rec.gate = asyncio.Event()
        co = Coalescer(rec, max_batch_rows=1, max_wait_s=0.0, max_inflight=1)
        blocker = asyncio.create_task(co.submit("m", np.ones((1, 1))))
        await _until(lambda: len(rec.batches) == 1, "the blocker in dispatch")
        with pytest.raises(TimeoutError):
            await co.submit("m", np.full((1, 1), 7.0), timeout=0.02)
        assert co.queued_rows == 1  # still queued until the loop drops it
        rec.gate.set()
        await blocker
        later = await co.submit("m", np.full((1, 1), 2.0))
        await co.close()
        return rec, later

    rec, later = run(main())
    assert later == 2.0
    assert rec.batches == [(1, 1), (1, 1)]  # the expired request never reached dispatch


def test_cancelled_caller_frees_its_slot():
    async def main():
        rec = Recorder()
        rec.gate = asyncio.Event()
        co = Coalescer(rec, max_batch_rows=1, max_wait_s=0.0, max_inflight=1)
        blocker = asyncio.create_task(co.submit("m", np.ones((1, 1))))
        await _until(lambda: len(rec.batches) == 1, "the blocker in dispatch")
        doomed = asyncio.create_task(co.submit("m", np.ones((3, 1))))
        await _until(lambda: co.queued_rows == 3, "the doomed call queued")
        doomed.cancel()
        rec.gate.set()
        await blocker
        await co.submit("m", np.ones((1, 1)))
        await co.close()
        return rec, co.queued_rows

    rec, queued = run(main())
    assert (3, 1) not in rec.batches and queued == 0


def test_one_failure_reaches_every_waiter_and_result_count_is_checked():
    async def main(rec):
        co = Coalescer(rec, max_batch_rows=100, max_wait_s=0.02)
        res = await asyncio.gather(*[co.submit("m", np.ones((1, 1))) for _ in range(5)], return_exceptions=True)
        await co.close()
        return res

    res = run(main(Recorder(fail=ValueError("boom"))))
    assert all(isinstance(r, ValueError) and str(r) == "boom" for r in res)
    res = run(main(Recorder(wrong_count=True)))
    assert all(isinstance(r, RuntimeError) and "results for" in str(r) for r in res)


def test_close_fails_queued_callers_and_rejects_new_ones():
    async def main():
        rec = Recorder()
        rec.gate = asyncio.Event()
        co = Coalescer(rec, max_batch_rows=1, max_wait_s=0.0, max_inflight=1)
        tasks = [asyncio.create_task(co.submit("m", np.ones((1, 1)))) for _ in range(3)]
        await _until(lambda: len(rec.batches) == 1 and co.queued_rows == 2, "one call in dispatch, two queued")
        await co.close()
        res = await asyncio.gather(*tasks, return_exceptions=True)
        with pytest.raises(RuntimeError, match="closed"):
            await co.submit("m", np.ones((1, 1)))
        return res

    res = run(main())
    assert all(isinstance(r, BaseException) for r in res)


def test_invalid_limits():
    with pytest.raises(ValueError):
        Coalescer(Recorder(), max_batch_rows=0)
