"""The embedded Redis: real redis-server processes in ``tmp_path``, real clients, no mocks.

Child Python processes report through files (written, then renamed) rather than pipes, so the
test never blocks on a read; every wait is bounded and every process is killed on teardown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import arq
import pytest
import redis
import redis.asyncio
from arq.connections import RedisSettings
from arq.jobs import Job

from dispatcher.dispatch.redis_server import EmbeddedRedis, EmbeddedRedisError, resolve_redis_url

ROOT = Path(__file__).resolve().parent.parent

# argv: data_dir, report file. Writes <report>.ready, waits for a "go" line on stdin so that
# racing children call ensure() together, then keeps the server in use until stdin closes.
ATTACH = """
import os, sys
import redis
from dispatcher.dispatch.redis_server import EmbeddedRedis
data_dir, report = sys.argv[1], sys.argv[2]
handle = EmbeddedRedis(data_dir)
open(report + ".ready", "w").close()
sys.stdin.readline()
handle.ensure()
with redis.Redis(unix_socket_path=str(handle.socket_path)) as client:
    client.incr("n")
    server_pid = client.info("server")["process_id"]
with open(report + ".tmp", "w") as f:
    f.write(f"{handle.owner} {server_pid}")
os.rename(report + ".tmp", report)
sys.stdin.read()
handle.stop()
"""

# argv: data_dir, report file. Writes a key, then waits to be killed, interrupted or for stdin
# to close.
OWN = """
import sys
import redis
from dispatcher.dispatch.redis_server import EmbeddedRedis
data_dir, report = sys.argv[1], sys.argv[2]
handle = EmbeddedRedis(data_dir)
handle.ensure()
with redis.Redis(unix_socket_path=str(handle.socket_path)) as client:
    client.set("k", "before crash")
open(report, "w").close()
sys.stdin.read()
"""


def _alive(pid: int) -> bool:
    """Whether any thread of ``pid`` still runs (zombies count as dead).

    A SIGKILLed leader turns zombie before its other threads are gone, and those still hold
    its sockets, so the leader's state alone is not enough.
    """
    states = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, IndexError):
            states.append((task / "stat").read_text().rsplit(") ", 1)[1][0])
    return any(state != "Z" for state in states)


def _servers_for(path: Path) -> list[int]:
    """Pids of live redis-servers whose command line mentions ``path``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"redis-server" in cmdline and os.fsencode(path) in cmdline:
                pids.append(int(entry.name))
    return [pid for pid in pids if _alive(pid)]


def _wait_until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting until {what}")
        time.sleep(0.02)


def _aof_holds(server_dir: Path, data: bytes) -> bool:
    """Whether an append-only file under ``server_dir`` holds ``data`` (Redis 7: appendonlydir/)."""
    for aof in server_dir.rglob("*.aof"):
        with contextlib.suppress(OSError):
            if data in aof.read_bytes():
                return True
    return False


@pytest.fixture
def handles(tmp_path: Path) -> Iterator[Callable[..., EmbeddedRedis]]:
    """Make handles on ``tmp_path``; stop them all, then fail if any server is left running."""
    made: list[EmbeddedRedis] = []

    def make(**kwargs: Any) -> EmbeddedRedis:
        made.append(EmbeddedRedis(tmp_path, **kwargs))
        return made[-1]

    yield make
    for handle in made:
        handle.stop()
    left = _servers_for(tmp_path)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"redis-server left running: {left}"


@pytest.fixture
def children() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``python -c`` children in the project root; kill any still running on teardown."""
    started: list[subprocess.Popen[str]] = []

    def spawn(code: str, *args: str) -> subprocess.Popen[str]:
        argv = [sys.executable, "-c", code, *args]
        # Own session: the test can Ctrl-C it (its process group) without hitting pytest.
        started.append(
            subprocess.Popen(  # noqa: S603
                argv, cwd=ROOT, stdin=subprocess.PIPE, text=True, start_new_session=True
            )
        )
        return started[-1]

    yield spawn
    for child in started:
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


async def test_data_survives_stop_and_restart(handles: Callable[..., EmbeddedRedis]) -> None:
    first = handles()
    url = first.ensure()
    assert first.owner
    assert url == f"unix://{first.socket_path}?db=0"
    client = redis.asyncio.from_url(url)
    try:
        assert await client.ping()
        await client.set("k", "v")
    finally:
        await client.aclose()

    first.stop()
    assert not first.owner
    assert not first.socket_path.exists()
    first.stop()  # idempotent

    second = handles()
    client = redis.asyncio.from_url(second.ensure())
    try:
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()
    assert second.owner


def test_second_handle_attaches_and_does_not_stop(handles: Callable[..., EmbeddedRedis]) -> None:
    owner, guest = handles(), handles()
    owner.ensure()
    assert guest.ensure() == owner.url
    assert not guest.owner
    with redis.Redis(unix_socket_path=str(guest.socket_path)) as client:
        client.set("k", "v")

    guest.stop()
    with redis.Redis(unix_socket_path=str(owner.socket_path)) as client:
        assert client.get("k") == b"v"

    owner.stop()  # the owner stops it for everyone; the guest starts it again on next need
    guest.ensure()
    assert guest.owner
    with redis.Redis(unix_socket_path=str(guest.socket_path)) as client:
        assert client.get("k") == b"v"


def test_threads_in_one_process_share_one_server(handles: Callable[..., EmbeddedRedis]) -> None:
    many = [handles() for _ in range(4)]
    with ThreadPoolExecutor(len(many)) as pool:
        urls = set(pool.map(lambda handle: handle.ensure(), many))
    assert len(urls) == 1
    assert sum(handle.owner for handle in many) == 1


def test_two_processes_racing_get_one_server(
    tmp_path: Path,
    handles: Callable[..., EmbeddedRedis],
    children: Callable[..., subprocess.Popen[str]],
) -> None:
    reports = [tmp_path / "a.txt", tmp_path / "b.txt"]
    racers = [children(ATTACH, str(tmp_path), str(report)) for report in reports]
    # Both past interpreter start-up and imports, then ensure() together.
    readies = [report.with_name(report.name + ".ready") for report in reports]
    _wait_until(lambda: all(ready.exists() for ready in readies), "both racers are ready", 30)
    for racer in racers:  # each is blocked reading its stdin: both go at once
        assert racer.stdin
        racer.stdin.write("go\n")
        racer.stdin.flush()
    _wait_until(lambda: all(report.exists() for report in reports), "both racers reported", 30)

    results = [report.read_text().split() for report in reports]
    assert sorted(owner for owner, _ in results) == ["False", "True"]
    assert results[0][1] == results[1][1]  # same redis-server pid
    with redis.Redis(unix_socket_path=str(handles().socket_path)) as client:
        assert client.get("n") == b"2"

    for racer in racers:
        assert racer.stdin
        racer.stdin.close()
    for racer in racers:
        assert racer.wait(10) == 0
    assert _servers_for(tmp_path) == []


def test_ctrl_c_on_owner_shuts_server_down_cleanly(
    tmp_path: Path, children: Callable[..., subprocess.Popen[str]]
) -> None:
    ready = tmp_path / "ready"
    owner = children(OWN, str(tmp_path), str(ready))
    _wait_until(ready.exists, "the child has written its key")
    os.killpg(owner.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    assert owner.wait(15) != 0  # KeyboardInterrupt, after atexit ran
    assert _servers_for(tmp_path) == []
    log = (tmp_path / "redis" / "redis.log").read_text()
    assert "User requested shutdown" in log  # our SHUTDOWN, not the SIGINT
    assert "SIGINT" not in log
    assert not (tmp_path / "redis" / "redis.sock").exists()


def test_restarts_after_crashed_owner(
    tmp_path: Path,
    handles: Callable[..., EmbeddedRedis],
    children: Callable[..., subprocess.Popen[str]],
) -> None:
    ready = tmp_path / "ready"
    crashed = children(OWN, str(tmp_path), str(ready))
    _wait_until(ready.exists, "the child has written its key")
    handle = handles()  # not started: only names the server's files
    # What redis has written to the AOF survives a kill -9 of the server (it is in the kernel's
    # page cache; appendfsync only decides when it reaches the disk), which is all we need.
    _wait_until(lambda: _aof_holds(handle.server_dir, b"before crash"), "the AOF has the write")
    old_pid = int((handle.server_dir / "redis.pid").read_text())

    crashed.kill()
    crashed.wait(5)
    os.kill(old_pid, signal.SIGKILL)
    _wait_until(lambda: not _alive(old_pid), "the killed server is gone")
    assert handle.socket_path.exists()  # stale leftovers

    handle.ensure()
    assert handle.owner
    assert int((handle.server_dir / "redis.pid").read_text()) != old_pid
    with redis.Redis(unix_socket_path=str(handle.socket_path)) as client:
        assert client.get("k") == b"before crash"


@pytest.mark.parametrize("via", ["redis_settings", "from_dsn"])
async def test_arq_enqueues_through_the_socket(
    handles: Callable[..., EmbeddedRedis], via: str
) -> None:
    handle = handles()
    url = handle.ensure()
    settings = handle.redis_settings() if via == "redis_settings" else RedisSettings.from_dsn(url)
    assert settings.unix_socket_path == str(handle.socket_path)
    pool = await arq.create_pool(settings)
    try:
        assert isinstance(await pool.enqueue_job("f", _job_id="x"), Job)
        assert await pool.enqueue_job("f", _job_id="x") is None
    finally:
        await pool.aclose()


def _script(path: Path, body: str, mode: int = 0o755) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(mode)
    return path


@pytest.mark.parametrize("kind", ["missing", "not executable"])
def test_unusable_binary_is_an_error(
    tmp_path: Path, handles: Callable[..., EmbeddedRedis], kind: str
) -> None:
    binary = tmp_path / "redis-server"
    if kind == "not executable":
        _script(binary, "exit 0", mode=0o644)
    handle = handles(binary=binary)
    with pytest.raises(EmbeddedRedisError, match="missing or not executable"):
        handle.ensure()
    assert not handle.owner


def test_server_that_exits_is_an_error_with_its_log(
    tmp_path: Path, handles: Callable[..., EmbeddedRedis]
) -> None:
    binary = _script(tmp_path / "redis-server", "echo 'bad config line' >&2; exit 3")
    handle = handles(binary=binary)
    with pytest.raises(EmbeddedRedisError, match=r"exited with 3(.|\n)*bad config line"):
        handle.ensure()
    assert not handle.owner


def test_server_that_never_answers_times_out(
    tmp_path: Path, handles: Callable[..., EmbeddedRedis]
) -> None:
    binary = _script(tmp_path / "redis-server", "echo 'stuck'; exec sleep 30")
    handle = handles(binary=binary, start_timeout=0.5)
    with pytest.raises(EmbeddedRedisError, match=r"did not answer(.|\n)*stuck"):
        handle.ensure()
    assert not handle.owner


def test_resolve_redis_url(tmp_path: Path) -> None:
    assert resolve_redis_url("redis://db:6379/1", str(tmp_path)) == ("redis://db:6379/1", None)
    url, handle = resolve_redis_url("", str(tmp_path))
    assert handle is not None
    with handle:
        assert handle.owner
        assert url == handle.url
    assert not handle.owner
    assert _servers_for(tmp_path) == []


def test_socket_path_too_long_is_an_error(tmp_path: Path) -> None:
    handle = EmbeddedRedis(tmp_path / ("d" * 120))
    with pytest.raises(EmbeddedRedisError, match="too long"):
        handle.ensure()
