"""SQLite's one writer at a time, handed over without sleeping.

SQLite lets one connection write at a time. A writer that finds the database locked sleeps in
SQLite's busy handler (1, 2, 5, 10, 15 … ms) and looks again, so under load the lock sits idle
between the holder's commit and the next sleeper's wake-up, and the waits add up to a long tail.
`WriterLock` queues writers before they ask SQLite: within a process on an asyncio lock, and
across processes (web app, workers, CLI) on an `flock` of a file beside the database, which the
kernel hands to the next waiter the moment it is released, and releases by itself if its holder
dies. SQLite's busy handler stays for writers that do not take this lock (a `sqlite3` shell).

Libraries that offer async file locks poll with sleeps of their own; blocking in `flock` on a
thread is what makes the hand-over immediate.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import weakref
from types import TracebackType

from dispatcher.errors import Unavailable


class WriterLockTimeout(Unavailable):
    """Another process held the database's write lock for longer than the timeout."""


class WriterLock:
    """Held around every SQLite write transaction of one engine (one per process)."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._local = asyncio.Lock()
        self._fd: int | None = None
        self._pid = 0

    async def __aenter__(self) -> None:
        await self._local.acquire()
        try:
            fd = self._file()
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        except BaseException:
            self._local.release()
            raise
        waiting = asyncio.get_running_loop().run_in_executor(None, fcntl.flock, fd, fcntl.LOCK_EX)
        try:
            await asyncio.wait_for(asyncio.shield(waiting), self.timeout)
        except BaseException as exc:
            # Timed out or cancelled while the thread still waits. Nobody else here may start
            # meanwhile (this open file would let a second holder in): once the thread has the
            # lock, it gives back both.
            waiting.add_done_callback(self._release_when_taken)
            if isinstance(exc, TimeoutError):
                raise WriterLockTimeout(
                    f"another process held the database's write lock for over {self.timeout:g} s"
                ) from None
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release(taken=True)

    def _file(self) -> int:
        """This process's own open file: a forked child must not share its parent's lock.

        It is closed when this lock is garbage-collected with its engine.
        """
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
            weakref.finalize(self, os.close, self._fd)
        return self._fd

    def _release_when_taken(self, waited: asyncio.Future[None]) -> None:
        self._release(taken=not waited.cancelled() and waited.exception() is None)

    def _release(self, *, taken: bool) -> None:
        try:
            if taken and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._local.release()
