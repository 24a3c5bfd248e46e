"""The append-only, hash-chained ledger of every state change.

Each event row stores the hash of the row before it; `verify` recomputes the chain and names the
first row that does not fit, so an auditor can tell that no publication time was rewritten.
Appends lock the single `ledger_head` row, so concurrent transactions extend the chain one after
another instead of forking it; the lock is held only until the caller's transaction commits, which
is why events are appended last in each transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dispatcher.storage.models import events, ledger_head

GENESIS_HASH = "0" * 64
_BATCH = 1000


def canonical_json(data: Any) -> str:
    """The one JSON spelling that hashes are computed over."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def event_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    body = canonical_json(
        {
            "seq": row["seq"],
            "at": row["at"].astimezone(UTC).isoformat(),
            "kind": row["kind"],
            "actor": row["actor"],
            "item_id": row["item_id"],
            "version": row["version"],
            "delivery_id": row["delivery_id"],
            "data": row["data"],
        }
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


@dataclass(frozen=True)
class Event:
    """One state change to record; `append_many` gives it its place in the chain."""

    kind: str
    actor: str
    item_id: int | None = None
    version: int | None = None
    delivery_id: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    at: datetime | None = None


async def append(conn: AsyncConnection, kind: str, actor: str, **fields: Any) -> int:
    """Append one event inside the caller's transaction; returns its sequence number."""
    return await append_many(conn, [Event(kind, actor, **fields)])


async def append_many(conn: AsyncConnection, batch: list[Event]) -> int:
    """Append events in order inside the caller's transaction; returns the last sequence number.

    Call it last in a transaction: the head row stays locked from here until the commit.
    """
    if not batch:
        return 0
    head = (await conn.execute(_LOCK_HEAD)).one()
    seq, prev_hash = head.seq, head.hash
    now = datetime.now(UTC)
    rows = []
    for event in batch:
        seq += 1
        row: dict[str, Any] = {
            "seq": seq,
            # Microseconds survive both SQLite and PostgreSQL, so the hash is stable on read-back.
            "at": event.at or now,
            "kind": event.kind,
            "actor": event.actor,
            "item_id": event.item_id,
            "version": event.version,
            "delivery_id": event.delivery_id,
            "data": canonical_json(dict(event.data)),
            "prev_hash": prev_hash,
        }
        row["hash"] = prev_hash = event_hash(prev_hash, row)
        rows.append(row)
    await conn.execute(_INSERT, rows)
    await conn.execute(_MOVE_HEAD, {"seq": seq, "hash": prev_hash})
    return int(seq)


# Built once: the appends of a busy worker then skip building and compiling them.
_LOCK_HEAD = (
    sa.select(ledger_head.c.seq, ledger_head.c.hash).where(ledger_head.c.id == 1).with_for_update()
)
_INSERT = events.insert()
_MOVE_HEAD = (
    ledger_head.update()
    .where(ledger_head.c.id == 1)
    .values(seq=sa.bindparam("seq"), hash=sa.bindparam("hash"))
)


@dataclass(frozen=True)
class LedgerReport:
    checked: int
    broken_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


async def count(conn: AsyncConnection) -> int:
    """How many events the ledger holds (the rows `verify` reads)."""
    return int((await conn.execute(sa.select(sa.func.count()).select_from(events))).scalar_one())


async def verify(
    conn: AsyncConnection, on_progress: Callable[[int], None] | None = None
) -> LedgerReport:
    """Recompute the whole chain; report the first row whose hash or link does not fit.

    `on_progress`, if given, is called after each batch read with how many more events were
    verified (the batch's, or those before the broken one)."""
    prev_hash, expected_seq, checked = GENESIS_HASH, 1, 0
    while True:
        rows = (
            await conn.execute(
                sa.select(events)
                .where(events.c.seq >= expected_seq)
                .order_by(events.c.seq)
                .limit(_BATCH)
            )
        ).mappings()
        batch, before, fault = list(rows), checked, None
        for row in batch:
            fault = _fault(row, prev_hash, expected_seq)
            if fault is not None:
                break
            prev_hash, expected_seq, checked = row["hash"], expected_seq + 1, checked + 1
        if on_progress is not None and checked > before:
            on_progress(checked - before)
        if fault is not None:
            return LedgerReport(checked, *fault)
        if len(batch) < _BATCH:
            break
    head = (await conn.execute(sa.select(ledger_head).where(ledger_head.c.id == 1))).one()
    if head.seq != checked or head.hash != prev_hash:
        return LedgerReport(checked, checked + 1, "newest events missing (chain truncated)")
    return LedgerReport(checked)


def _fault(row: sa.RowMapping, prev_hash: str, expected_seq: int) -> tuple[int, str] | None:
    """(seq, problem) if `row` does not follow on from the event before it."""
    if row["seq"] != expected_seq:
        return expected_seq, "event missing (row deleted)"
    if row["prev_hash"] != prev_hash:
        return row["seq"], "link to the previous event broken"
    if event_hash(prev_hash, dict(row)) != row["hash"]:
        return row["seq"], "content does not match its hash (edited)"
    return None


async def history(conn: AsyncConnection, item_id: int) -> list[dict[str, Any]]:
    """An item's events, oldest first, as JSON-ready dicts."""
    rows = await conn.execute(
        sa.select(events).where(events.c.item_id == item_id).order_by(events.c.seq)
    )
    return [
        {
            "seq": r.seq,
            "at": r.at.isoformat(),
            "kind": r.kind,
            "actor": r.actor,
            "version": r.version,
            "delivery_id": r.delivery_id,
            "data": json.loads(r.data),
            "hash": r.hash,
        }
        for r in rows
    ]
