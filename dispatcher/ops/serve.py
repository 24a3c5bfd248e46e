"""Running the web app, and unless told otherwise a worker, in one event loop until a signal."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from dispatcher.dispatch.worker import build_worker, redis_for
from dispatcher.http.app import create_app
from dispatcher.rules.rulebook import build_rules
from dispatcher.settings import Settings


async def serve(settings: Settings, banner: str = "", with_worker: bool = True) -> None:
    """Serve the API on the configured host and port; return after a clean shutdown.

    With no `REDIS_URL`, this process starts the embedded Redis (or joins one that another
    process of the same data directory runs) and stops it on the way out if it started it.
    """
    settings.check_channels()
    rules = build_rules(settings)  # a bad catalogue or calendar stops it before Redis starts
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with redis_for(settings) as redis_url:
        app = create_app(settings, redis_url=redis_url, rules=rules)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        worker = build_worker(settings, redis_url, handle_signals=False) if with_worker else None
        worker_task = asyncio.create_task(worker.async_run()) if worker else None
        try:
            site = web.TCPSite(runner, settings.server.host, settings.server.port)
            await site.start()
            host, port = settings.server.host, settings.server.port
            role = "API and a worker" if worker else "API"
            print(f"{banner}serving the {role} on http://{host}:{port}/api/v1/  (Ctrl-C stops)",
                  flush=True)  # fmt: skip
            waiters = [asyncio.create_task(stop.wait())] + ([worker_task] if worker_task else [])
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if worker_task in done and worker_task is not None and not stop.is_set():
                worker_task.result()  # the worker died: surface why
        finally:
            if worker is not None:
                await worker.stop(worker_task)
            await runner.cleanup()
