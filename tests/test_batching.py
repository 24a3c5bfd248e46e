"""The Batcher: concurrent requests share one call; each caller gets its own answer or error."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from channels.batching import Batcher


async def test_concurrent_requests_share_a_call_and_keep_their_answers() -> None:
    calls: list[list[int]] = []

    async def double(batch: Sequence[int]) -> list[int]:
        calls.append(list(batch))
        return [n * 2 for n in batch]

    batcher: Batcher[int, int] = Batcher(double, max_size=4, max_wait=0.01)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(10)))
    assert results == [n * 2 for n in range(10)]
    assert [len(c) for c in calls] == [4, 4, 2]  # full batches at once, the rest after max_wait
    assert sorted(n for c in calls for n in c) == list(range(10))


async def test_a_failing_batch_fails_each_of_its_callers_and_not_later_ones() -> None:
    async def handle(batch: Sequence[int]) -> list[int]:
        if 0 in batch:
            raise RuntimeError("database went away")
        return list(batch)

    batcher: Batcher[int, int] = Batcher(handle, max_size=2, max_wait=0.001)
    first = await asyncio.gather(batcher.submit(0), batcher.submit(1), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in first)
    assert await batcher.submit(5) == 5


async def test_a_cancelled_caller_does_not_break_the_batch() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(batch: Sequence[int]) -> list[int]:
        started.set()
        await release.wait()
        return list(batch)

    batcher: Batcher[int, int] = Batcher(slow, max_size=10, max_wait=0.001)
    doomed = asyncio.create_task(batcher.submit(1))
    kept = asyncio.create_task(batcher.submit(2))
    await asyncio.wait_for(started.wait(), 5)  # both are in the call under way
    doomed.cancel()
    release.set()
    assert await kept == 2
    with pytest.raises(asyncio.CancelledError):
        await doomed
    await batcher.drain()


async def test_requests_arriving_during_a_call_go_together_in_the_next() -> None:
    calls: list[list[int]] = []
    running, most = 0, 0
    started, release, all_in = asyncio.Event(), asyncio.Event(), asyncio.Event()
    entered: list[int] = []

    async def slow(batch: Sequence[int]) -> list[int]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        calls.append(list(batch))
        started.set()
        await release.wait()
        running -= 1
        return list(batch)

    batcher: Batcher[int, int] = Batcher(slow, max_size=10, max_wait=0.001)

    async def submit(n: int) -> int:
        entered.append(n)
        if len(entered) == 3:  # the test wakes after this step, when submit() has queued it
            all_in.set()
        return await batcher.submit(n)

    first = asyncio.create_task(batcher.submit(0))
    await asyncio.wait_for(started.wait(), 5)  # the first call is under way, and stays so
    later = [asyncio.create_task(submit(n)) for n in range(1, 4)]
    await asyncio.wait_for(all_in.wait(), 5)  # all three are queued behind it
    assert calls == [[0]]
    release.set()
    assert await asyncio.gather(first, *later) == [0, 1, 2, 3]
    assert calls == [[0], [1, 2, 3]]
    assert most == 1  # one call at a time (concurrency 1)
    await batcher.drain()


async def test_requests_wait_max_wait_for_company_even_after_a_call_ends() -> None:
    calls: list[list[int]] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def handle(batch: Sequence[int]) -> list[int]:
        calls.append(list(batch))
        if batch[0] == 0:
            started.set()
            await release.wait()
        return list(batch)

    # A second is long enough for the steps below, which take no time of their own.
    batcher: Batcher[int, int] = Batcher(handle, max_size=10, max_wait=1.0)
    queued = asyncio.Event()

    async def submit_second() -> int:
        queued.set()  # the test wakes after this step, when submit() has queued the request
        return await batcher.submit(1)

    first = asyncio.create_task(batcher.submit(0))
    await asyncio.wait_for(started.wait(), 5)  # the first call is under way ...
    second = asyncio.create_task(submit_second())
    await asyncio.wait_for(queued.wait(), 5)
    release.set()  # ... and ends before the second request waited its max_wait
    assert await first == 0
    assert calls == [[0]]  # the call's end did not send the second request alone
    third = asyncio.create_task(batcher.submit(2))
    assert await asyncio.gather(second, third) == [1, 2]
    assert calls == [[0], [1, 2]]
    full = await asyncio.gather(*(batcher.submit(n) for n in range(10)))  # a full batch: at once
    assert full == list(range(10)) and calls[-1] == list(range(10))
