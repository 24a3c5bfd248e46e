"""Running the web app, and unless told otherwise a worker, in one event loop until a signal.

Supervised (`dispatch.worker.supervise` and `watch_redis`): a dead embedded Redis is started
again (it reloads its append-only file) within a second, and a worker that stopped (its Redis
went away, say) is started again after a growing pause, while the API goes on answering. Only
a signal ends `serve`.
"""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from dispatcher.dispatch.worker import embedded_redis_for, supervise_all, watch_redis
from dispatcher.http.app import create_app
from dispatcher.rules.rulebook import build_rules
from dispatcher.settings import Settings


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
            tasks.append(asyncio.create_task(watch_redis(embedded, stop)))
        if with_worker:
            tasks.append(asyncio.create_task(supervise_all(settings, redis_url, stop)))
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
