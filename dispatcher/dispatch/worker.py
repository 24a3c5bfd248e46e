"""The arq worker: `deliver` jobs and the `sweep` cron, with the channels the settings enable.

One place owns the worker's resources (`on_startup` / `on_shutdown`): the database engine, one
HTTP session for every channel, the channel objects and their concurrency limits. Channels are
built from an explicit registry, so tests can hand in their own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from arq import Worker, cron, func

from channels import REGISTRY
from channels.base import ChannelContext, ChannelFactory
from dispatcher.dispatch import jobs, queue
from dispatcher.dispatch.redis_server import EmbeddedRedis, resolve_redis_url
from dispatcher.rules.catalogue import domain_outline
from dispatcher.settings import Settings, SettingsError
from dispatcher.storage.db import create_engine

MAX_TRIES = 1_000_000  # arq's own limit stays out of the way: attempts are counted in SQL


def channel_settings(settings: Settings, name: str) -> dict[str, Any]:
    """The settings section a channel's factory receives (secrets included, never logged)."""
    section: dict[str, Any] = {"base_url": settings.site.base_url, "title": settings.site.title}
    if name == "feeds":
        section["hub_url"] = settings.site.hub_url
    elif name == "website":
        section["domains"] = domain_outline()
    elif name == "wechat":
        section.update(settings.channels.wechat.model_dump())
    elif name.startswith("media:"):
        section.update(settings.channels.media[name.split(":", 1)[1]].model_dump())
    return section


def build_channels(
    settings: Settings, registry: Mapping[str, ChannelFactory], session: aiohttp.ClientSession
) -> dict[str, Any]:
    """One channel object per enabled channel; SettingsError if one has no implementation."""
    built = {}
    for name in settings.channels.enabled:
        factory = registry.get(name) or registry.get(name.split(":", 1)[0])
        if factory is None:
            raise SettingsError(f"channel {name!r} is enabled but this version cannot send to it")
        context = ChannelContext(
            name=name,
            settings=channel_settings(settings, name),
            session=session,
            data_dir=str(settings.data_path),
        )
        built[name] = factory(context)
    return built


async def _startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    registry: Mapping[str, ChannelFactory] = ctx["registry"]
    engine = create_engine(settings.database_url, pre_ping=False)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    try:
        channels = build_channels(settings, registry, session)
    except Exception:
        await session.close()
        await engine.dispose()
        raise
    ctx[jobs.DEPS] = jobs.WorkerDeps.build(settings, engine, channels, [session.close])


async def _shutdown(ctx: dict[str, Any]) -> None:
    deps: jobs.WorkerDeps | None = ctx.get(jobs.DEPS)
    if deps is None:
        return
    await deps.batches.drain()
    for close in deps.closers:
        await close()
    await deps.engine.dispose()


def _sweep_schedule(seconds: int) -> dict[str, Any]:
    if seconds < 60:
        return {"second": set(range(0, 60, seconds))}
    return {"second": 0, "minute": set(range(0, 60, max(1, seconds // 60)))}


def build_worker(
    settings: Settings,
    redis_url: str,
    registry: Mapping[str, ChannelFactory] | None = None,
    *,
    handle_signals: bool = True,
    burst: bool = False,
) -> Worker:
    """An arq worker for the settings' channels (or `registry`'s, for tests)."""
    lease = settings.dispatch.lease_seconds
    deliver = func(jobs.deliver, name=queue.JOB, keep_result=0, timeout=lease, max_tries=MAX_TRIES)
    # arq re-runs a dead worker's job once its in-progress mark expires, after the longest
    # function timeout + 10 s: keep the sweeper's timeout no longer than the lease.
    sweeper = cron(
        jobs.sweep, name="sweep", run_at_startup=True, unique=True, timeout=lease,
        **_sweep_schedule(settings.dispatch.sweep_interval),
    )  # fmt: skip
    return Worker(
        functions=[deliver],
        cron_jobs=[sweeper],
        queue_name=queue.QUEUE,
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
        ctx={"settings": settings, "registry": REGISTRY if registry is None else registry},
        log_results=False,
    )


@contextlib.asynccontextmanager
async def redis_for(settings: Settings) -> AsyncIterator[str]:
    """The configured Redis URL, or the embedded Redis (started here if nobody runs it yet)."""
    url, embedded = await asyncio.to_thread(
        resolve_redis_url, settings.storage.redis_url, str(settings.data_path)
    )
    try:
        yield url
    finally:
        if isinstance(embedded, EmbeddedRedis):
            await asyncio.to_thread(embedded.stop)


async def stop_worker(worker: Worker, run_task: asyncio.Task[None] | None = None) -> None:
    """Stop a worker and release everything it holds.

    arq's `close()` gathers its job tasks and, if one was cancelled, raises before running
    `on_shutdown` and closing its Redis pool; so the tasks are cancelled and drained first.
    A job cancelled mid-publish keeps its lease and is picked up again when the lease runs out.
    """
    tasks = list(worker.tasks.values())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    worker.tasks.clear()
    if worker.main_task is not None:
        worker.main_task.cancel()
    if run_task is not None:
        await asyncio.gather(run_task, return_exceptions=True)
    await worker.close()


async def run_worker(settings: Settings) -> None:
    """`gongkai worker`: run until SIGINT or SIGTERM."""
    settings.check_channels()
    async with redis_for(settings) as url:
        worker = build_worker(settings, url)
        try:
            await worker.async_run()
        except asyncio.CancelledError:
            pass  # arq's signal handler cancels the run on SIGINT/SIGTERM
        finally:
            await stop_worker(worker)
