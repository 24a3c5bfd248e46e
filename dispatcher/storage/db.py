"""Database engines and migrations, for SQLite (embedded default) and PostgreSQL.

SQLite gets WAL, foreign keys, a busy timeout and `BEGIN IMMEDIATE` for every write transaction
(`transaction()`), after queuing for the write lock across processes (`writer_lock`): two
writers take turns instead of failing half-way with "database is locked"; this is what makes
"exactly one of two concurrent approvals succeeds" hold on SQLite as it does on PostgreSQL.
Every write goes through `transaction()`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from dispatcher.storage import sqlite_inline
from dispatcher.storage.writer_lock import WriterLock

MIGRATIONS = str(Path(__file__).with_name("migrations"))
_WRITER = "gongkai_writer"
SQLITE_TIMEOUT = 30.0  # seconds a writer waits for the write lock before giving up


class DatabaseError(RuntimeError):
    """The database URL cannot be used."""


def create_engine(url: str, *, pre_ping: bool = True) -> AsyncEngine:
    """An async engine for `url` (sqlite+aiosqlite:// or postgresql+asyncpg://).

    `pre_ping` tests each PostgreSQL connection when it leaves the pool: one more round trip
    per transaction. The worker goes without, and retries a batch once whose connection turned
    out to be dead (`jobs.WorkerDeps`). The pool hands out the most recently used connection
    first, whose prepared statements are warm.

    An SQLite file gets a twin engine for its write transactions (`transaction`), which runs
    SQLite's calls on the event loop's thread (`sqlite_inline`); reads stay on aiosqlite's
    thread, so a long one never blocks the loop. Disposing the engine disposes its twin.
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql" or parsed.drivername == "postgres":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise DatabaseError(f"unsupported database {parsed.drivername!r}: use SQLite or PostgreSQL")
    if parsed.drivername.startswith("sqlite"):
        return _sqlite_engines(parsed.database or "")
    return create_async_engine(
        parsed, pool_size=10, max_overflow=10, pool_pre_ping=pre_ping, pool_use_lifo=True
    )


@dataclass(frozen=True)
class _Writes:
    """Where an SQLite engine's write transactions run, and the queue they wait in."""

    engine: AsyncEngine
    lock: WriterLock | asyncio.Lock


_sqlite_writes: weakref.WeakKeyDictionary[Engine, _Writes] = weakref.WeakKeyDictionary()


def _sqlite_engines(database: str) -> AsyncEngine:
    """The engine for reads, its writes registered in `_sqlite_writes`."""
    reader = _sqlite_engine(database, inline=False)
    if not database or database == ":memory:":  # one private database: no twin, no file lock
        _sqlite_writes[reader.sync_engine] = _Writes(reader, asyncio.Lock())
        return reader
    writer = _sqlite_engine(database, inline=True)
    lock = WriterLock(f"{database}.writer-lock", SQLITE_TIMEOUT)
    _sqlite_writes[reader.sync_engine] = _Writes(writer, lock)

    @event.listens_for(reader.sync_engine, "engine_disposed")
    def _dispose_twin(_engine: Engine) -> None:
        writer.sync_engine.dispose()  # runs inside AsyncEngine.dispose(), as that does

    return reader


def _sqlite_engine(database: str, *, inline: bool) -> AsyncEngine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{database}"
    if inline:
        connect = sqlite_inline.creator(database, SQLITE_TIMEOUT)
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
        # Writers (see `transaction`) take the write lock up front; readers never wait for it.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get(_WRITER) else "BEGIN")

    return engine


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """`engine.begin()`; on SQLite, on the engine's write twin after queuing for the write lock
    in this process and across processes (`writer_lock`), so that SQLite's own lock is free
    whenever a writer asks for it. PostgreSQL needs no such thing.
    """
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            yield conn
        return
    writes = _sqlite_writes.get(engine.sync_engine)
    if writes is None:  # an engine not made by `create_engine`
        writes = _sqlite_writes.setdefault(engine.sync_engine, _Writes(engine, asyncio.Lock()))
    async with writes.lock, writes.engine.connect() as conn:
        conn.info[_WRITER] = True  # this dict outlives the checkout: always reset it
        try:
            async with conn.begin():
                yield conn
        finally:
            conn.info.pop(_WRITER, None)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    return config


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema up to `revision` (Alembic), inside one transaction."""

    def run(connection: Any) -> None:
        config = _alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with transaction(engine) as conn:
        await conn.run_sync(run)


async def current_revision(conn: AsyncConnection) -> str | None:
    """The Alembic revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    def read(sync_conn: Any) -> str | None:
        rev: str | None = MigrationContext.configure(sync_conn).get_current_revision()
        return rev

    return await conn.run_sync(read)
