"""The outbox: one delivery row per (item version, channel), written with the state change.

Rows are inserted in the same transaction as the approval or withdrawal that causes them, so an
approved item can never lack its deliveries; the dispatcher drains them. Returns the ledger events
for the caller to append with the rest of its transaction's events.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from dispatcher.rules.states import DeliveryStatus
from dispatcher.storage import ledger
from dispatcher.storage.models import deliveries


async def write_deliveries(
    conn: AsyncConnection,
    item_id: int,
    version: int,
    channels: list[str],
    action: str,
    start: datetime,
) -> list[ledger.Event]:
    """Insert one pending delivery per channel (the outbox); return their ledger events."""
    if not channels:
        return []
    pending = DeliveryStatus.PENDING
    rows = [
        {"item_id": item_id, "version": version, "channel": channel, "status": pending,
         "action": action, "attempts": 0, "next_attempt_at": start, "steps": {},
         "requested_at": start, "updated_at": start}
        for channel in channels
    ]  # fmt: skip
    inserted = await conn.execute(
        deliveries.insert().returning(
            deliveries.c.id, deliveries.c.channel, sort_by_parameter_order=True
        ),
        rows,
    )
    return [
        ledger.Event(
            "delivery.created",
            "system",
            item_id=item_id,
            version=version,
            delivery_id=row.id,
            at=start,
            data={"channel": row.channel, "action": action, "status": DeliveryStatus.PENDING},
        )
        for row in inserted
    ]
