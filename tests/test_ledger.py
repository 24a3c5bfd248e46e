"""The hash-chained ledger: appends chain, concurrent appends do not fork, tampering is found."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
import sqlalchemy as sa

from dispatcher.storage import ledger
from dispatcher.storage.db import Database
from dispatcher.storage.models import events, ledger_head


async def _append_many(db: Database, n: int, item_id: int = 1) -> None:
    for i in range(n):
        async with db.transaction() as conn:
            await ledger.append(conn, "test.event", "tester", item_id=item_id, data={"i": i})


async def test_chain_links_each_event_to_the_previous(db: Database) -> None:
    await _append_many(db, 5)
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(events).order_by(events.c.seq))).all()
        report = await ledger.verify(conn)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == ledger.GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert report.ok and report.checked == 5


async def test_concurrent_appends_do_not_fork(db: Database) -> None:
    await asyncio.gather(*(_append_many(db, 5, item_id=k) for k in range(6)))
    async with db.connect() as conn:
        report = await ledger.verify(conn)
        prev = (await conn.execute(sa.select(events.c.prev_hash))).scalars().all()
    assert report.ok and report.checked == 30
    assert len(set(prev)) == 30


async def test_rolled_back_transaction_leaves_no_event(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await ledger.append(conn, "test.event", "tester")
            raise RuntimeError("abort")
    await _append_many(db, 1)
    async with db.connect() as conn:
        assert (await ledger.verify(conn)).checked == 1


async def _tamper(db: Database, sql: str) -> ledger.LedgerReport:
    async with db.transaction() as conn:
        await conn.exec_driver_sql(sql)
    async with db.connect() as conn:
        return await ledger.verify(conn)


@pytest.mark.parametrize(
    ("sql", "seq", "problem"),
    [
        ("UPDATE events SET data = '{\"i\":99}' WHERE seq = 3", 3, "edited"),
        ("UPDATE events SET at = at - INTERVAL '1 hour' WHERE seq = 2", 2, "edited"),
        ("UPDATE events SET actor = 'someone else' WHERE seq = 4", 4, "edited"),
        ("DELETE FROM events WHERE seq = 2", 2, "deleted"),
        ("UPDATE events SET prev_hash = hash WHERE seq = 5", 5, "link"),
        ("DELETE FROM events WHERE seq = 6", 6, "truncated"),
    ],
)
async def test_tampering_is_detected_at_the_right_row(
    db: Database, sql: str, seq: int, problem: str
) -> None:
    await _append_many(db, 6)
    if db.dialect == "sqlite":
        sql = sql.replace("at - INTERVAL '1 hour'", "datetime(at, '-1 hour')")
    report = await _tamper(db, sql)
    assert not report.ok
    assert report.broken_seq == seq
    assert problem in (report.problem or "")


async def test_recomputed_hashes_do_not_hide_an_edit(db: Database) -> None:
    """Rewriting a row *and* its own hash still breaks the link from the next row."""
    await _append_many(db, 4)
    async with db.transaction() as conn:
        row = (await conn.execute(sa.select(events).where(events.c.seq == 2))).mappings().one()
        forged = dict(row, data=json.dumps({"i": 42}))
        forged_hash = ledger.event_hash(row["prev_hash"], forged)
        await conn.execute(
            events.update().where(events.c.seq == 2).values(data=forged["data"], hash=forged_hash)
        )
    async with db.connect() as conn:
        report = await ledger.verify(conn)
    assert report.broken_seq == 3
    assert "link" in (report.problem or "")


async def test_head_tracks_the_newest_event(db: Database) -> None:
    await _append_many(db, 3)
    async with db.connect() as conn:
        head = (await conn.execute(sa.select(ledger_head))).one()
        last = (await conn.execute(sa.select(events).where(events.c.seq == 3))).one()
    assert (head.seq, head.hash) == (3, last.hash)
