"""The arq worker: `deliver` jobs and the `sweep` cron, with the channels the settings enable.

One place owns the worker's resources (`on_startup` / `on_shutdown`): the database, the rules,
one HTTP session for every channel, the channel objects and their concurrency limits. Channels
are built from an explicit registry, so tests can hand in their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiohttp
from arq import Worker, cron, func
from redis.exceptions import RedisError

import channels
from channels.registry import Registry
from dispatcher.dispatch import jobs, queue
from dispatcher.dispatch.channels import build_channels
from dispatcher.dispatch.redis_server import EmbeddedRedis, resolve_redis_url
from dispatcher.errors import GongkaiError, InputError
from dispatcher.rules.rulebook import build_rules
from dispatcher.settings import Settings
from dispatcher.storage.db import Database

log = logging.getLogger(__name__)

MAX_TRIES = 1_000_000  # arq's own limit stays out of the way: attempts are counted in SQL
# The arq internals `DispatchWorker.stop` relies on; tests/test_worker.py checks they are there.
ARQ_INTERNALS = ("tasks", "main_task", "close", "finish_job", "finish_failed_job")
FINISH_GRACE_S = 5.0  # how long `stop` waits for arq's shielded bookkeeping of cancelled jobs


class DispatchWorker(Worker):
    """arq's worker, with a `stop` that always lets go of everything it holds.

    arq's `close()` gathers its job tasks and, if one was cancelled, raises before running
    `on_shutdown` and closing its Redis pool; `stop` cancels and drains them first. A job
    cancelled mid-publish keeps its lease and is picked up again when the lease runs out.

    A cancelled job's task ends at once, but arq finishes its Redis bookkeeping in a task
    of its own (`asyncio.shield(finish_job(...))`); `stop` waits for those too, so the pool
    is not closed under a Redis transaction that is still running.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._finishing: set[asyncio.Task[Any]] = set()

    async def finish_job(self, *args: Any, **kwargs: Any) -> None:
        await self._tracked(super().finish_job(*args, **kwargs))

    async def finish_failed_job(self, *args: Any, **kwargs: Any) -> None:
        await self._tracked(super().finish_failed_job(*args, **kwargs))

    async def _tracked(self, work: Any) -> None:
        task = asyncio.current_task()  # arq shields these: a task of their own
        if task is None:
            await work
            return
        self._finishing.add(task)
        try:
            await work
        finally:
            self._finishing.discard(task)

    async def stop(self, run_task: asyncio.Task[None] | None = None) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()
        if self._finishing:
            await asyncio.wait(set(self._finishing), timeout=FINISH_GRACE_S)
        if self.main_task is not None:
            self.main_task.cancel()
        if run_task is not None:
            await asyncio.gather(run_task, return_exceptions=True)
        try:
            await self.close()
        except (RedisError, OSError) as exc:
            # Redis went away (arq's close talks to it before `on_shutdown`): let go of the
            # database, the HTTP session and the pool all the same.
            log.warning("worker stopping without its Redis: %s", exc)
            if self.on_shutdown is not None:
                await self.on_shutdown(self.ctx)
            if self._pool is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._pool.close(close_connection_pool=True)
                self._pool = None


async def _startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    registry: Registry = ctx["registry"]
    rules = build_rules(settings)
    db = Database(settings.database_url, pre_ping=False)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    steps = jobs.Steps(db)
    names = [n for n in settings.channels.enabled if queue.group_of(n) in ctx["groups"]]
    try:
        enabled = build_channels(
            settings, rules.catalogue, registry, session, steps, redis=ctx["redis"], names=names
        )
    except Exception:
        await session.close()
        await db.dispose()
        raise
    ctx[jobs.DEPS] = jobs.WorkerDeps.build(
        settings, db, rules.catalogue, enabled, [session.close], steps
    )


async def _shutdown(ctx: dict[str, Any]) -> None:
    deps: jobs.WorkerDeps | None = ctx.pop(jobs.DEPS, None)  # once, whoever calls it
    if deps is None:
        return
    await deps.batches.drain()
    for close in deps.closers:
        await close()
    await deps.db.dispose()


def _sweep_schedule(seconds: int) -> dict[str, Any]:
    if seconds < 60:
        return {"second": set(range(0, 60, seconds))}
    return {"second": 0, "minute": set(range(0, 60, max(1, seconds // 60)))}


def worker_groups(settings: Settings, only: str | None, but: str | None) -> list[str]:
    """The queues a `gongkai worker --channels LIST` or `--except LIST` takes: each group of
    channels (`queue.GROUPS`) is taken whole, so a worker never holds a job it cannot do."""
    enabled = list(settings.channels.enabled)
    named = [n.strip() for n in (only or but or "").split(",") if n.strip()]
    unknown = [n for n in named if n not in enabled]
    flag = "channels" if only else "except"
    if (only is not None or but is not None) and not named:
        raise InputError([(flag, "a comma-separated list of enabled channels")])
    if unknown:
        raise InputError([(flag, f"not enabled: {', '.join(unknown)} "
                                  f"(enabled: {', '.join(enabled)})")])  # fmt: skip
    wanted = set(named) if only else set(enabled) - set(named)
    groups = []
    for group in queue.GROUPS:
        members = {n for n in enabled if queue.group_of(n) == group}
        taken = members & wanted
        if taken and taken != members:
            together = ", ".join(n for n in enabled if n in members)
            raise InputError([(flag, f"{together} share a queue: a worker takes all or none")])
        if taken:
            groups.append(group)
    return groups  # none: `run_worker` waits (compose's worker before any remote channel)


def groups_with_channels(settings: Settings, groups: Iterable[str]) -> list[str]:
    """Those of `groups` that have an enabled channel (the site's always has the website)."""
    present = {queue.group_of(name) for name in settings.channels.enabled}
    return [g for g in queue.GROUPS if g in set(groups) and g in present]


def build_workers(
    settings: Settings,
    redis_url: str,
    registry: Registry | None = None,
    *,
    groups: Iterable[str] = tuple(queue.GROUPS),
    handle_signals: bool = True,
    burst: bool = False,
) -> list[DispatchWorker]:
    """One arq worker per group of channels (`queue.GROUPS`) that has an enabled channel."""
    return [
        build_worker(settings, redis_url, registry, group=group, handle_signals=handle_signals,
                     burst=burst)
        for group in groups_with_channels(settings, groups)
    ]  # fmt: skip


def build_worker(
    settings: Settings,
    redis_url: str,
    registry: Registry | None = None,
    *,
    group: str,
    handle_signals: bool = True,
    burst: bool = False,
) -> DispatchWorker:
    """An arq worker for one group's queue and the settings' channels of that group (or
    `registry`'s, for tests)."""
    lease = settings.dispatch.lease_seconds
    deliver = func(jobs.deliver, name=queue.JOB, keep_result=0, timeout=lease, max_tries=MAX_TRIES)
    # arq re-runs a dead worker's job once its in-progress mark expires, after the longest
    # function timeout + 10 s: keep the sweeper's timeout no longer than the lease.
    sweeper = cron(
        jobs.sweep, name="sweep", run_at_startup=True, unique=True, timeout=lease,
        **_sweep_schedule(settings.dispatch.sweep_interval),
    )  # fmt: skip
    # The followers' digests: opened at each account's `digest_at`, so looked at every minute.
    digester = cron(jobs.digest, name="digest", second=30, unique=True, timeout=lease)
    return DispatchWorker(
        functions=[deliver],
        # Either group sweeps (a tick's sweep runs once: arq's cron jobs are unique by id);
        # the digests are the remote WeChat accounts'.
        cron_jobs=[sweeper, digester] if group == queue.REMOTE else [sweeper],
        queue_name=queue.GROUPS[group],
        redis_settings=queue.redis_settings(redis_url),
        on_startup=_startup,
        on_shutdown=_shutdown,
        handle_signals=handle_signals,
        burst=burst,
        max_jobs=settings.dispatch.worker_jobs,
        job_timeout=lease,
        keep_result=0,
        max_tries=MAX_TRIES,
        poll_delay=0.1,
        ctx={
            "settings": settings,
            "registry": channels.REGISTRY if registry is None else registry,
            "groups": (group,),
        },
        log_results=False,
    )


@contextlib.asynccontextmanager
async def redis_for(settings: Settings) -> AsyncIterator[str]:
    """The configured Redis URL, or the embedded Redis (started here if nobody runs it yet)."""
    async with embedded_redis_for(settings) as (url, _):
        yield url


@contextlib.asynccontextmanager
async def embedded_redis_for(
    settings: Settings,
) -> AsyncIterator[tuple[str, EmbeddedRedis | None]]:
    """`redis_for`, with the embedded server's handle (None with a `REDIS_URL`)."""
    url, embedded = await asyncio.to_thread(
        resolve_redis_url, settings.storage.redis_url, str(settings.data_path)
    )
    try:
        yield url, embedded
    finally:
        if isinstance(embedded, EmbeddedRedis):
            await asyncio.to_thread(embedded.stop)


async def run_worker(settings: Settings, groups: Iterable[str] = tuple(queue.GROUPS)) -> None:
    """`gongkai worker`: one arq worker per group of channels asked for, run until SIGINT or
    SIGTERM, each started again if it stops by itself (its Redis went away); with the embedded
    Redis, that is started again too."""
    settings.check_channels()
    build_rules(settings)  # a bad catalogue or calendar stops it here, before Redis starts
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with embedded_redis_for(settings) as (url, embedded):
        watching = asyncio.create_task(watch_redis(embedded, stop)) if embedded else None
        try:
            if groups_with_channels(settings, groups):
                await supervise_all(settings, url, stop, groups)
            else:
                log.warning("no enabled channel is this worker's to deliver to: it waits "
                            "(enabled: %s)", ", ".join(settings.channels.enabled))  # fmt: skip
                await stop.wait()
        finally:
            stop.set()
            if watching is not None:
                await asyncio.gather(watching, return_exceptions=True)


WATCH_EVERY = 1.0  # seconds between two looks at the embedded Redis
RESTART_PAUSE = (1.0, 30.0)  # a stopped worker restarts after 1 s, then 2, 4 … at most 30


async def watch_redis(embedded: EmbeddedRedis, stop: asyncio.Event) -> None:
    """Start the embedded Redis again whenever it is gone (killed, crashed); say in the log when
    its disk fails it (a full disk: it then refuses writes) and when that is over."""
    trouble: str | None = None
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_EVERY)
        if stop.is_set():
            return
        try:
            await asyncio.to_thread(embedded.check)
        except GongkaiError as exc:
            log.error("the embedded Redis is down and could not be started again: %s", exc)
            continue
        now = await asyncio.to_thread(embedded.disk_problem)
        if now is not None and now != trouble:
            log.error("the embedded Redis in %s %s", embedded.server_dir, now)
        elif now is None and trouble is not None:
            log.warning("the embedded Redis in %s writes to its disk again", embedded.server_dir)
        trouble = now


async def supervise_all(
    settings: Settings,
    redis_url: str,
    stop: asyncio.Event,
    groups: Iterable[str] = tuple(queue.GROUPS),
) -> None:
    """`supervise` a worker for each of `groups` that has an enabled channel."""
    await asyncio.gather(
        *(supervise(settings, redis_url, stop, g) for g in groups_with_channels(settings, groups))
    )


async def supervise(
    settings: Settings, redis_url: str, stop: asyncio.Event, group: str = queue.SITE
) -> None:
    """Run a worker for `group` until `stop`; one that stops by itself is started again after a
    pause."""
    pause = RESTART_PAUSE[0]
    while not stop.is_set():
        worker: DispatchWorker = build_worker(
            settings, redis_url, handle_signals=False, group=group
        )
        run = asyncio.create_task(worker.async_run())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([run, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        try:
            await worker.stop(run)
        except Exception:  # whatever it was, the next worker starts afresh
            log.exception("the worker did not stop cleanly")
        if stop.is_set():
            return
        reason = run.exception() if run.done() and not run.cancelled() else None
        log.error("the worker stopped (%s); starting it again in %.0f s", reason, pause)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)
        pause = min(pause * 2, RESTART_PAUSE[1])
