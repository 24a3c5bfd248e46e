"""Whether the ledger's chain verifies, as every audit report states it, without re-hashing
every event on every request.

A `Checkpoint` is a point up to which the chain was verified (its seq and that event's hash).
`extend` verifies only the events after it, linking each to the one before, so a report costs
the events appended since; the first check in a process is a full one (`ledger.verify`). The
report says both: through which event the chain verifies, and when the full check was made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dispatcher.storage import ledger
from dispatcher.storage.models import events, ledger_head

_BATCH = 1000


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    ok: bool
    full_check_at: datetime
    problem: str = ""
    bad_seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": self.ok,
            "through_event": self.seq,
            "full_check_at": self.full_check_at.isoformat(),
            **({"first_bad_event": self.bad_seq, "problem": self.problem} if not self.ok else {}),
        }


async def full(
    conn: AsyncConnection, on_progress: Callable[[int], None] | None = None
) -> Checkpoint:
    """Verify the whole chain (`ledger.verify`)."""
    report = await ledger.verify(conn, on_progress=on_progress)
    now = datetime.now(UTC)
    if not report.ok:
        return Checkpoint(report.checked, "", False, now, report.problem or "", report.broken_seq)
    head = (await conn.execute(sa.select(ledger_head).where(ledger_head.c.id == 1))).one()
    return Checkpoint(head.seq, head.hash, True, now)


async def extend(conn: AsyncConnection, point: Checkpoint | None) -> Checkpoint:
    """`point` carried forward over the events appended since; a full check if there is none
    (or it had failed: a broken chain stays reported until a full check passes)."""
    if point is None or not point.ok:
        return await full(conn)
    seq, prev = point.seq, point.hash
    while True:
        rows = list(
            (
                await conn.execute(
                    sa.select(events).where(events.c.seq > seq).order_by(events.c.seq).limit(_BATCH)
                )
            ).mappings()
        )
        for row in rows:
            problem = None
            if row["seq"] != seq + 1:
                problem = "event missing (row deleted)"
            elif row["prev_hash"] != prev:
                problem = "link to the previous event broken"
            elif ledger.event_hash(prev, dict(row)) != row["hash"]:
                problem = "content does not match its hash (edited)"
            if problem:
                return Checkpoint(seq, prev, False, point.full_check_at, problem, seq + 1)
            seq, prev = row["seq"], row["hash"]
        if len(rows) < _BATCH:
            head = (await conn.execute(sa.select(ledger_head).where(ledger_head.c.id == 1))).one()
            if head.seq != seq or head.hash != prev:
                problem = "newest events missing (chain truncated)"
                return Checkpoint(seq, prev, False, point.full_check_at, problem, seq + 1)
            return Checkpoint(seq, prev, True, point.full_check_at)
