"""Running the web app in the current event loop until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from dispatcher.settings import Settings
from dispatcher.web import create_app


async def serve(settings: Settings, banner: str = "") -> None:
    """Serve the API on the configured host and port; return after a clean shutdown."""
    settings.check_channels()
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, settings.server.host, settings.server.port)
        await site.start()
        host, port = settings.server.host, settings.server.port
        print(f"{banner}serving on http://{host}:{port}/api/v1/  (Ctrl-C stops)", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
