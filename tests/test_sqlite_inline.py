"""SQLite write transactions run on the event loop's thread and behave like aiosqlite's."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

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
