"""SQLite on the event loop's own thread, for short write transactions.

aiosqlite runs every SQLite call on a thread of its own and hands the result back through the
event loop: four hand-overs per statement, about fifty per batch transaction. Each costs a
thread wake-up and a fight for the GIL with a busy event loop, and all of them happen while the
transaction holds SQLite's single write lock, so every other writer waits for them too.
On this 2-core machine a worker's claim-and-settle transaction for one delivery took 4-6 ms
through aiosqlite and 2 ms inline; approvals went from 43 to 71 per second.

`connect` gives SQLAlchemy's aiosqlite dialect (via `async_creator`) a connection with
aiosqlite's interface whose calls run at once on the calling thread. SQLite itself takes
microseconds per statement here, and a writer never waits for the lock inside SQLite: it
queues first (`writer_lock`), so the loop is not blocked for long. `db.Database` uses it for
write transactions only: reads, some of them long (a ledger verification, a site rebuild,
metrics), stay on aiosqlite, which keeps the loop free.

SQLAlchemy's adapter reaches into three private attributes of aiosqlite's connection (`_conn`,
`_tx` to set the isolation level on aiosqlite's thread, `_connection` to see it is open), so
these classes provide them too. `tests/test_sqlite_inline.py` compares what the adapter uses of
aiosqlite with what is here and names anything missing; SQLAlchemy and aiosqlite are bounded at
their next minor version in `pyproject.toml`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any


class Cursor:
    """aiosqlite's cursor interface over a `sqlite3.Cursor`, without a thread."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    def __await__(self) -> Any:  # `await conn.cursor()`, as with aiosqlite
        return self.__aenter__().__await__()

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> Cursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _Immediate:
    """Stands in for aiosqlite's request queue, used by SQLAlchemy to set `isolation_level`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def put_nowait(self, request: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = request
        try:
            future.set_result(function())
        except Exception as exc:  # handed to the awaiting caller
            future.set_exception(exc)


class Connection:
    """aiosqlite's connection interface over a `sqlite3.Connection`, without a thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._tx = _Immediate(conn)

    @property
    def _connection(self) -> sqlite3.Connection | None:  # SQLAlchemy checks it is open
        return self._conn

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("Connection closed")
        return self._conn

    def cursor(self) -> Cursor:
        return Cursor(self._live().cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        self._live().commit()

    async def rollback(self) -> None:
        self._live().rollback()

    async def close(self) -> None:
        self.stop()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._live().create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return self._live().isolation_level

    @property
    def in_transaction(self) -> bool:
        return self._live().in_transaction

    def stop(self) -> None:
        """SQLAlchemy's forced close (`terminate`)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def creator(database: str, timeout: float) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine` opening `database` inline."""

    async def connect() -> Connection:
        conn = sqlite3.connect(
            database, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        return Connection(conn)

    return connect
