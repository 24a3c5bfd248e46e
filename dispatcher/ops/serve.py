"""Running the web app, and unless told otherwise a worker, in one event loop until a signal.

Supervised: a dead embedded Redis is started again (it reloads its append-only file) within
`WATCH_EVERY` seconds, and a worker that stopped (its Redis went away, say) is started again
after a growing pause, while the API goes on answering. Only a signal ends `serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from dispatcher.dispatch.redis_server import EmbeddedRedis
from dispatcher.dispatch.worker import DispatchWorker, build_worker, embedded_redis_for
from dispatcher.errors import GongkaiError
from dispatcher.http.app import create_app
from dispatcher.rules.rulebook import build_rules
from dispatcher.settings import Settings

log = logging.getLogger(__name__)

WATCH_EVERY = 1.0  # seconds between two looks at the embedded Redis
RESTART_PAUSE = (1.0, 30.0)  # a stopped worker restarts after 1 s, then 2, 4 … at most 30


async def serve(settings: Settings, banner: str = "", with_worker: bool = True) -> None:
    """Serve the API on the configured host and port; return after a clean shutdown.

    With no `REDIS_URL`, this process starts the embedded Redis (or joins one that another
    process of the same data directory runs), keeps it running, and stops it on the way out if
    it started it.
    """
    settings.check_channels()
    rules = build_rules(settings)  # a bad catalogue or calendar stops it before Redis starts
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with embedded_redis_for(settings) as (redis_url, embedded):
        app = create_app(settings, redis_url=redis_url, rules=rules)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        tasks = []
        if embedded is not None:
            tasks.append(asyncio.create_task(_watch(embedded, stop)))
        if with_worker:
            tasks.append(asyncio.create_task(_supervise(settings, redis_url, stop)))
        try:
            site = web.TCPSite(runner, settings.server.host, settings.server.port)
            await site.start()
            host, port = settings.server.host, settings.server.port
            role = "API and a worker" if with_worker else "API"
            print(f"{banner}serving the {role} on http://{host}:{port}/api/v1/  (Ctrl-C stops)",
                  flush=True)  # fmt: skip
            await stop.wait()
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runner.cleanup()


async def _watch(embedded: EmbeddedRedis, stop: asyncio.Event) -> None:
    """Start the embedded Redis again whenever it is gone (killed, crashed, its disk full)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_EVERY)
        if stop.is_set():
            return
        try:
            await asyncio.to_thread(embedded.check)
        except GongkaiError as exc:
            log.error("the embedded Redis is down and could not be started again: %s", exc)


async def _supervise(settings: Settings, redis_url: str, stop: asyncio.Event) -> None:
    """Run a worker until `stop`; one that stops by itself is started again after a pause."""
    pause = RESTART_PAUSE[0]
    while not stop.is_set():
        worker: DispatchWorker = build_worker(settings, redis_url, handle_signals=False)
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
