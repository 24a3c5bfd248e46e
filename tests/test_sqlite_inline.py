"""SQLite write transactions run on the event loop's thread and behave like aiosqlite's."""

from __future__ import annotations

import inspect
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import aiosqlite as sa_aiosqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from dispatcher.storage import sqlite_inline
from dispatcher.storage.db import Database, migrate
from dispatcher.storage.models import agencies


def agency(code: str, name: str) -> sa.Insert:
    now = datetime.now(UTC)
    return agencies.insert().values(
        code=code, name=name, region="990100", index_prefix=code, created_at=now
    )


async def test_writes_run_inline_and_reads_on_aiosqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")
    await migrate(db)
    async with db.transaction() as conn:  # warm the write pool: its connect is inline too
        await conn.execute(sa.text("SELECT 1"))
    before = threading.active_count()
    async with db.transaction() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.driver_connection, sqlite_inline.Connection)
        await conn.execute(agency("X1", "示范市财政局"))
        assert threading.active_count() == before  # no thread hand-over
    async with db.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.driver_connection, aiosqlite.Connection)
        row = (await conn.execute(sa.select(agencies).where(agencies.c.code == "X1"))).one()
    assert row.name == "示范市财政局"
    async with db.transaction() as conn:
        mode = (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar_one()
        keys = (await conn.execute(sa.text("PRAGMA foreign_keys"))).scalar_one()
    assert (mode, keys) == ("wal", 1)
    await db.dispose()


async def test_inline_errors_are_the_usual_ones_and_roll_back(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")
    await migrate(db)
    with pytest.raises(IntegrityError):
        async with db.transaction() as conn:
            await conn.execute(agency("A", "甲"))
            await conn.execute(agency("A", "乙"))
    async with db.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(agencies))).scalar() == 0
    async with db.transaction() as conn:  # the connection is usable after the error
        await conn.execute(agency("A", "甲"))
    async with db.connect() as conn:
        assert (await conn.execute(sa.select(agencies.c.name))).scalar_one() == "甲"
    await db.dispose()


async def test_disposing_the_engine_closes_its_write_connections(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")
    async with db.transaction() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await conn.execute(sa.text("CREATE TABLE t (n INTEGER)"))
    assert isinstance(raw, sqlite_inline.Connection) and raw.in_transaction is False
    await db.dispose()
    with pytest.raises(ValueError, match="closed"):
        raw.cursor()


def _used_on(pattern: str, cls: type) -> set[str]:
    """Attributes SQLAlchemy's classes (`cls` and its SQLAlchemy bases) use through `pattern`."""
    names: set[str] = set()
    for klass in inspect.getmro(cls):
        if klass.__module__.startswith("sqlalchemy"):
            names |= set(re.findall(pattern + r"\.(\w+)", inspect.getsource(klass)))
    return names


@pytest.mark.parametrize(
    ("adapter", "pattern", "real", "shim"),
    [
        ("connection", r"self\._connection", "Connection", "Connection"),
        ("cursor", r"self\._cursor", "Cursor", "Cursor"),
    ],
)
def test_the_shim_has_everything_sqlalchemys_adapter_uses_of_aiosqlite(
    adapter: str, pattern: str, real: str, shim: str
) -> None:
    """`sqlite_inline` stands in for aiosqlite inside SQLAlchemy's adapter, private attributes
    (`_conn`, `_tx`, `_connection`) included. If a SQLAlchemy release uses something more of
    aiosqlite, this fails and names it: extend the shim, then the version bound."""
    adapter_class = getattr(sa_aiosqlite, f"AsyncAdapt_aiosqlite_{adapter}")
    used = _used_on(pattern, adapter_class)
    assert used, "the adapter no longer reaches the driver this way: re-read it"
    provided = set(dir(getattr(aiosqlite, real)))
    if adapter == "connection":  # instance attributes, set in aiosqlite's __init__
        provided |= {"_conn", "_connection", "_tx"}
    impersonated = {name for name in used if name in provided}
    shim_class = getattr(sqlite_inline, shim)
    missing = sorted(
        name
        for name in impersonated
        if not hasattr(shim_class, name) and name not in _INSTANCE_ATTRIBUTES
    )
    assert missing == [], f"SQLAlchemy's adapter uses aiosqlite's {missing}; the shim lacks them"


_INSTANCE_ATTRIBUTES = {"_conn", "_tx"}  # set on each shim Connection in its __init__


async def test_the_shim_sets_the_isolation_level_through_the_adapter(tmp_path: Path) -> None:
    """The one private path: SQLAlchemy sets `isolation_level` by queueing a call on `_tx` for
    aiosqlite's thread; the shim runs it at once on its `_conn`."""
    path = str(tmp_path / "g.db")
    engine = create_async_engine(
        "sqlite+aiosqlite://", async_creator=sqlite_inline.creator(path, 5.0)
    )

    def levels(sync_conn: Any) -> tuple[Any, ...]:
        adapter = sync_conn.connection.dbapi_connection
        driver = adapter.driver_connection
        adapter.isolation_level = "DEFERRED"  # SQLAlchemy's setter, through `_tx`
        first = driver.isolation_level
        adapter.isolation_level = None
        return type(driver), first, driver.isolation_level

    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(levels)
        assert found == (sqlite_inline.Connection, "DEFERRED", None)
    finally:
        await engine.dispose()
