"""Group work from concurrent callers into batches: one transaction, or one write, for many.

It lives in `channels/` because it depends on nothing: the dispatcher batches claims and outcomes
with it (one SQL transaction for many deliveries), and the website channel its page writes.

A worker runs many `deliver` jobs at once; each needs a short transaction to claim its row and
another to record the outcome. Done one by one, those transactions (and the ledger head lock
each outcome takes) cost more than the jobs themselves. A `Batcher` collects requests for up to
`max_wait` seconds from the first one, or until there are `max_size`, and hands them to one
call; each caller gets its own result, or the batch's exception.

At most `concurrency` calls run at once (one, by default). A batch that is ready while they run
goes when one finishes, with whatever arrived meanwhile: a request waits at most `max_wait`
plus one call, and under load the batches grow instead of many small calls competing for
connections, locks and the CPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class Batcher(Generic[In, Out]):
    """Run `handle(batch)` for requests gathered from concurrent callers of `submit`."""

    def __init__(
        self,
        handle: Callable[[Sequence[In]], Awaitable[Sequence[Out]]],
        max_size: int = 64,
        max_wait: float = 0.002,
        concurrency: int = 1,
    ) -> None:
        self._handle = handle
        self._max_size = max_size
        self._max_wait = max_wait
        self._concurrency = concurrency
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._ready = False  # the pending requests waited long enough, or are a full batch
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, request: In) -> Out:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        self._pending.append((request, future))
        if len(self._pending) >= self._max_size:
            self._ready = True
        elif not self._ready and self._timer is None:
            self._timer = loop.call_later(self._max_wait, self._expire)
        self._start()
        return await future

    def _expire(self) -> None:
        self._timer = None
        self._ready = True
        self._start()

    def _start(self) -> None:
        """Start calls for the ready requests, as far as `concurrency` allows."""
        while self._ready and self._pending and len(self._running) < self._concurrency:
            batch = self._pending[: self._max_size]
            del self._pending[: self._max_size]
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._done)
        if not self._pending:  # the next request starts a new wait
            self._ready = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._start()

    async def _run(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            results = await self._handle([request for request, _ in batch])
        except BaseException as exc:  # every caller learns what happened to its request
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def drain(self) -> None:
        """Run what is pending now and wait for every call under way (at shutdown)."""
        while self._pending or self._running:
            self._ready = bool(self._pending)
            self._start()
            await asyncio.gather(*self._running, return_exceptions=True)
