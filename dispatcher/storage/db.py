"""The SQL database, SQLite (the embedded default) or PostgreSQL, and its migrations.

`Database` owns what a process needs of one database: an engine for reads, where write
transactions run, and on SQLite the queue its writers wait in. Every write goes through
`Database.transaction()`.

SQLite gets WAL, foreign keys, a busy timeout and `BEGIN IMMEDIATE` for every write transaction,
after queuing for the write lock in this process and across processes (`writer_lock`): two
writers take turns instead of failing half-way with "database is locked"; this is what makes
"exactly one of two concurrent approvals succeeds" hold on SQLite as it does on PostgreSQL.
A file database's write transactions run on a second engine whose SQLite calls run on the event
loop's thread (`sqlite_inline`); reads stay on aiosqlite's thread, so a long one never blocks
the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncTransaction,
    create_async_engine,
)

from dispatcher.errors import DatabaseError, Unavailable
from dispatcher.storage import sqlite_inline
from dispatcher.storage.writer_lock import WriterLock

MIGRATIONS = str(Path(__file__).with_name("migrations"))
_WRITER = "gongkai_writer"
SQLITE_TIMEOUT = 30.0  # seconds a writer waits for the write lock before giving up
# A write transaction runs on the event loop's thread (`sqlite_inline`): SQLite's own busy wait
# there would freeze the loop while another program (a `sqlite3` shell) holds the database.
# It waits this long inside SQLite, then sleeps on the loop and tries again, for WRITE_WAIT s.
INLINE_BUSY = 0.005
WRITE_WAIT = 10.0
RETRY_AFTER = 5  # seconds a client is told to wait when the database stays busy


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except Exception:  # SQLAlchemy's ArgumentError, or a ValueError from a bad port
        # Not echoed: a URL may carry a password.
        raise DatabaseError(
            "the database URL is not a URL: use sqlite+aiosqlite:///PATH or "
            "postgresql://USER:PASSWORD@HOST:PORT/NAME"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise DatabaseError(f"unsupported database {parsed.drivername!r}: use SQLite or PostgreSQL")
    return parsed


class Database:
    """One database: `connect()` for reads, `transaction()` for writes, `dispose()` at the end.

    `pre_ping` tests each PostgreSQL connection when it leaves the pool: one more round trip
    per transaction. The worker goes without, and retries a batch once whose connection turned
    out to be dead (`dispatch.jobs`). The pool hands out the most recently used connection
    first, whose prepared statements are warm.
    """

    def __init__(self, url: str, *, pre_ping: bool = True, write_wait: float = WRITE_WAIT) -> None:
        parsed = _parse(url)
        self.url = url
        self.write_wait = write_wait
        self._lock: WriterLock | asyncio.Lock | None = None
        if parsed.drivername.startswith("postgresql"):
            self.engine = create_async_engine(
                parsed, pool_size=10, max_overflow=10, pool_pre_ping=pre_ping, pool_use_lifo=True
            )
            self._writer = self.engine
            return
        database = parsed.database or ""
        self.engine = _sqlite_engine(database, inline=False)
        if not database or database == ":memory:":  # one private database: no twin, no file lock
            self._writer, self._lock = self.engine, asyncio.Lock()
        else:
            self._writer = _sqlite_engine(database, inline=True)
            self._lock = WriterLock(f"{database}.writer-lock", SQLITE_TIMEOUT)

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    def connect(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reading (on SQLite, never the writer's)."""
        return self.engine.connect()

    def connect_paged(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for a long read made a short page at a time, with work between the
        pages (the audit's exports): on SQLite its statements run on the event loop's thread,
        as a writer's do, so a page costs no hand-offs to aiosqlite's thread and back; it never
        takes the write lock (it reads in a deferred transaction). PostgreSQL: `connect`."""
        return self._writer.connect()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed on leaving, rolled back on an exception.

        On SQLite it first queues for the write lock in this process and across processes,
        so that SQLite's own lock is free whenever a writer asks for it; PostgreSQL needs no
        such thing.
        """
        if self._lock is None:
            async with self._writer.begin() as conn:
                yield conn
            return
        async with self._lock, self._writer.connect() as conn:
            conn.info[_WRITER] = True  # this dict outlives the checkout: always reset it
            try:
                transaction = await self._begin(conn)
                try:
                    yield conn
                except BaseException:
                    await transaction.rollback()
                    raise
                await transaction.commit()
            finally:
                conn.info.pop(_WRITER, None)

    async def _begin(self, conn: AsyncConnection) -> AsyncTransaction:
        """BEGIN IMMEDIATE, retried with sleeps on the loop while another program holds the
        database; Unavailable (503) after `write_wait` seconds."""
        loop = asyncio.get_running_loop()
        give_up, pause = loop.time() + self.write_wait, 0.01
        while True:
            try:
                return await conn.begin()
            except OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if loop.time() >= give_up:
                    raise Unavailable(
                        f"the database is busy: another program has held its write lock for "
                        f"{self.write_wait:g} s", retry_after=RETRY_AFTER,
                    ) from None  # fmt: skip
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)

    async def dispose(self) -> None:
        """Close every pooled connection (of both engines)."""
        if self._writer is not self.engine:
            await self._writer.dispose()
        await self.engine.dispose()


def _sqlite_engine(database: str, *, inline: bool) -> AsyncEngine:
    if database and database != ":memory:":
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"cannot create the directory of {database}: {exc}") from None
    url = f"sqlite+aiosqlite:///{database}"
    if inline:
        connect = sqlite_inline.creator(database, INLINE_BUSY)
        engine = create_async_engine(url, async_creator=connect)
    else:
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_TIMEOUT})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that "begin" below decides the mode.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # With WAL, NORMAL cannot corrupt the file and survives any process crash; only a power
        # cut can lose the last commits (a delivery then runs again: channels are idempotent).
        # FULL would fsync every commit and cut the embedded dispatcher's throughput by 4x.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers (see `Database.transaction`) take the write lock up front; readers never wait.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get(_WRITER) else "BEGIN")

    return engine


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    return config


async def migrate(db: Database, revision: str = "head") -> None:
    """Bring the schema up to `revision` (Alembic), inside one transaction."""

    def run(connection: Any) -> None:
        config = _alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with db.transaction() as conn:
        await conn.run_sync(run)


async def schema_revision(db: Database) -> str | None:
    """The Alembic revision the database is at (None before the first migration); Unavailable
    if the database cannot be reached."""
    try:
        async with db.connect() as conn:
            return await current_revision(conn)
    except (OSError, SQLAlchemyError) as exc:
        where = make_url(db.url).render_as_string(hide_password=True)
        reason = getattr(exc, "orig", None) or exc
        raise Unavailable(f"cannot reach the database {where}: {reason}") from None


async def current_revision(conn: AsyncConnection) -> str | None:
    """The Alembic revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    def read(sync_conn: Any) -> str | None:
        rev: str | None = MigrationContext.configure(sync_conn).get_current_revision()
        return rev

    return await conn.run_sync(read)
