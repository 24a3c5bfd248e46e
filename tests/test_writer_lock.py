"""SQLite writers queue across processes on a file lock, and never two hold it at once."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from dispatcher.http.app import create_app
from dispatcher.items import accounts
from dispatcher.settings import load_settings
from dispatcher.storage.db import Database, migrate
from dispatcher.storage.writer_lock import WriterLock, WriterLockTimeout
from tests.helpers import CENTER, bid_candidates, wait_until

ROOT = Path(__file__).resolve().parent.parent

HOLDER = textwrap.dedent(
    """
    import fcntl, sys
    with open(sys.argv[1], "ab") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        print("held", flush=True)
        sys.stdin.readline()
    """
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock file until it reads a line."""
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", HOLDER, str(tmp_path / "db.writer-lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    with proc:  # closes its pipes at the end
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
        proc.kill()


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    proc.wait(10)


PROC_LOCKS = Path("/proc/locks")
WAIT = 10.0  # seconds any wait may take before the test fails
needs_proc_locks = pytest.mark.skipif(
    not PROC_LOCKS.exists(), reason="watches /proc/locks (Linux) to see a waiter blocked"
)


def blocked_on(path: Path) -> bool:
    """Does the kernel list this process as waiting for an flock on ``path``?

    A blocked request shows in /proc/locks as ``1: -> FLOCK  ADVISORY  WRITE <pid>
    <maj>:<min>:<inode> 0 EOF``, under the lock that blocks it.
    """
    pid, inode = str(os.getpid()), str(os.stat(path).st_ino)
    for line in PROC_LOCKS.read_text().splitlines():
        fields = line.split()
        if (
            fields[1:3] == ["->", "FLOCK"]
            and fields[5] == pid
            and fields[6].rsplit(":", 1)[-1] == inode
        ):
            return True
    return False


def blocked(path: Path) -> Callable[[], Awaitable[bool]]:
    """A check for `wait_until`: this process waits in flock on ``path``."""

    async def check() -> bool:
        return blocked_on(path)

    return check


def free_elsewhere(path: Path) -> bool:
    """Could another process take the lock right now?"""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@needs_proc_locks
async def test_waits_for_another_process_and_holds_the_lock_while_inside(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    path = tmp_path / "db.writer-lock"
    lock = WriterLock(str(path), timeout=10)

    async def take() -> None:
        async with lock:
            assert not free_elsewhere(path)
            await asyncio.sleep(0)

    task = asyncio.create_task(take())
    await wait_until(blocked(path), seconds=WAIT)  # our thread waits in flock for the file
    assert not task.done(), "took the lock while another process held it"
    release(holder)
    await asyncio.wait_for(task, 10)
    assert free_elsewhere(path)


async def test_in_process_writers_take_turns(tmp_path: Path) -> None:
    lock = WriterLock(str(tmp_path / "db.writer-lock"), timeout=10)
    inside, most = 0, 0

    async def write() -> None:
        nonlocal inside, most
        async with lock:
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0)  # the others run now and must queue, not enter
            inside -= 1

    await asyncio.gather(*(write() for _ in range(20)))
    assert most == 1


async def test_timeout_gives_a_clear_error_and_the_lock_recovers(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    path = tmp_path / "db.writer-lock"
    lock = WriterLock(str(path), timeout=0.2)
    with pytest.raises(WriterLockTimeout, match="held the database's write lock"):
        async with lock:
            pytest.fail("entered while another process held the lock")
    release(holder)
    async with asyncio.timeout(10):  # the waiting thread takes it, then gives it back
        async with lock:
            assert not free_elsewhere(path)
    assert free_elsewhere(path)


@needs_proc_locks
async def test_a_cancelled_waiter_lets_nobody_in_until_the_lock_came_back(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    path = tmp_path / "db.writer-lock"
    lock = WriterLock(str(path), timeout=10)
    waiter = asyncio.create_task(lock.__aenter__())
    await wait_until(blocked(path), seconds=WAIT)  # the waiter's thread waits in flock
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    second = asyncio.create_task(lock.__aenter__())
    await asyncio.sleep(0)  # one step of the loop: the second writer queues before the release
    assert not second.done(), "a second holder got in while another process held the lock"
    release(holder)
    await asyncio.wait_for(second, 10)
    # Had the second writer got in beside the cancelled waiter's thread, that thread would have
    # given the lock back on taking it, under the second writer's feet.
    assert not free_elsewhere(path)
    await lock.__aexit__(None, None, None)
    assert free_elsewhere(path)


COUNTER = textwrap.dedent(
    """
    import asyncio, sys
    import sqlalchemy as sa
    sys.path.insert(0, sys.argv[2])
    from dispatcher.storage.db import Database

    async def main():
        db = Database(sys.argv[1])
        for _ in range(int(sys.argv[3])):
            async with db.transaction() as conn:
                n = (await conn.execute(sa.text("SELECT n FROM counter"))).scalar_one()
                await conn.execute(sa.text("UPDATE counter SET n = :n"), {"n": n + 1})
        await db.dispose()

    asyncio.run(main())
    """
)


async def test_writers_in_several_processes_lose_no_update(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'counter.db'}"
    db = Database(url)
    async with db.transaction() as conn:
        await conn.execute(sa.text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        await conn.execute(sa.text("INSERT INTO counter VALUES (0)"))
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", COUNTER, url, str(ROOT), "150")
        for _ in range(3)
    ]
    async with asyncio.timeout(50):
        codes = [await p.wait() for p in procs]
    assert codes == [0, 0, 0]
    async with db.connect() as conn:
        assert (await conn.execute(sa.text("SELECT n FROM counter"))).scalar_one() == 450
    await db.dispose()
    assert (tmp_path / "counter.db.writer-lock").exists()


async def test_another_program_holding_the_database_never_freezes_the_loop(
    tmp_path: Path,
) -> None:
    """A `sqlite3` shell holding a write transaction: a write waits on the event loop (which
    goes on answering), then fails with 503 and Retry-After; once the shell lets go, it runs."""
    path = tmp_path / "busy.db"
    db = Database(f"sqlite+aiosqlite:///{path}", write_wait=1.0)
    await migrate(db)
    settings = load_settings(env={"DATABASE_URL": f"sqlite+aiosqlite:///{path}",
                                  "GONGKAI_DATA_DIR": str(tmp_path / "var")})  # fmt: skip
    async with db.transaction() as conn:
        await accounts.add_agency(conn, CENTER, "示范市公共资源交易中心", "990100")
        token = await accounts.create_token(conn, CENTER, "editor", "张编辑")
    editor = {"Authorization": f"Bearer {token}"}
    outside = sqlite3.connect(path, isolation_level=None)
    outside.execute("BEGIN IMMEDIATE")
    loop = asyncio.get_running_loop()
    try:
        async with TestClient(TestServer(create_app(settings, db), host="127.0.0.1")) as client:
            started = loop.time()
            approving = asyncio.create_task(
                client.post("/api/v1/items", json=bid_candidates(), headers=editor)
            )
            # The server runs in this loop: while the write waits, the longest the loop goes
            # without running anything else is what a /healthz would wait.
            stall = 0.0
            while not approving.done():
                before = loop.time()
                await asyncio.sleep(0.01)  # a measurement, not a wait for something
                stall = max(stall, loop.time() - before - 0.01)
            assert stall < 0.3, f"the event loop stalled for {stall:.2f} s"
            assert (await client.get("/healthz")).status == 200
            response = await approving
            assert response.status == 503, await response.text()
            assert response.headers["Retry-After"] == "5"
            assert "another program" in (await response.json())["detail"]
            assert 1.0 <= loop.time() - started < 5

            loop.call_later(0.3, outside.execute, "COMMIT")  # the shell lets go in time
            async with db.transaction() as conn:
                await conn.execute(sa.text("CREATE TABLE after_the_shell (x INTEGER)"))
    finally:
        outside.close()
        await db.dispose()
