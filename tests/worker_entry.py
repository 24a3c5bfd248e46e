"""A worker process for the fault tests: the real worker, channels pointed at the fake remote.

python tests/worker_entry.py REMOTE_URL      (settings from the environment)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dispatcher.dispatch.worker import build_workers
from dispatcher.settings import load_settings
from tests.fakes import remote_registry


async def main(remote_url: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings()
    workers = build_workers(settings, settings.storage.redis_url, remote_registry(remote_url))
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*(worker.async_run() for worker in workers))
    finally:
        for worker in workers:
            await worker.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
