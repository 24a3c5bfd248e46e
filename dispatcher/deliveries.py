"""Delivery state transitions: claim with a lease, record the outcome, retry by hand.

SQL decides who works on a delivery: `claim` moves a due row to `sending` with a lease, in one
transaction, so two workers (or a worker and a restarted copy of its job) never both hold it while
the lease runs. A row whose lease ran out (its worker died mid-flight) is claimable again; the
channel's idempotency makes that second attempt harmless. Every outcome is a ledger event.

Ordering per (item, channel): a newer version waits while an older one is in flight, and a
withdrawal waits for an in-flight publication, then takes down what was published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from channels.base import Publication, Receipt
from dispatcher import ledger
from dispatcher.accounts import Actor
from dispatcher.db import transaction
from dispatcher.errors import Conflict, NotFound
from dispatcher.models import (
    CONFIRMING,
    FAILED,
    PENDING,
    PUBLISHED,
    RETRYING,
    SENDING,
    SKIPPED,
    SUPERSEDED,
    TAKEN_DOWN,
    WITHDRAWN,
    agencies,
    deliveries,
    item_versions,
    items,
)
from dispatcher.workflow import require

WAIT_FOR_ORDER = 2.0  # seconds before looking again when an older delivery is in flight
_EARLY_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class Claim:
    """A leased delivery: what to send, and the receipt a withdraw or confirm works from."""

    id: int
    key: str
    channel: str
    action: str
    attempt: int
    confirming: bool
    publication: Publication
    receipt: Receipt | None


@dataclass(frozen=True)
class Later:
    """Not yet: look again after `delay` seconds (scheduled, or waiting for an older one)."""

    delay: float


def delivery_key(item_id: int, version: int, channel: str) -> str:
    return f"{item_id}:{version}:{channel}"


async def claim(engine: AsyncEngine, delivery_id: int, lease_seconds: int) -> Claim | Later | None:
    """Lease a due delivery; None when there is nothing to do (finished, taken, skipped)."""
    async with transaction(engine) as conn:
        row = (
            await conn.execute(
                sa.select(deliveries).where(deliveries.c.id == delivery_id).with_for_update()
            )
        ).first()
        now = datetime.now(UTC)
        if row is None or not _claimable(row, now):
            return None
        if (
            row.status in (PENDING, RETRYING, CONFIRMING)
            and row.next_attempt_at > now + _EARLY_SLACK
        ):
            return Later((row.next_attempt_at - now).total_seconds())
        item, version = await _item_and_version(conn, row)
        if row.action == "publish" and (
            version.status == SUPERSEDED or item.item_status == WITHDRAWN
        ):
            await _finish(conn, row, SKIPPED, "superseded or withdrawn before it was sent", now)
            return None
        if await _older_in_flight(conn, row, now):
            return Later(WAIT_FOR_ORDER)
        receipt = _own_receipt(row) if row.status == CONFIRMING else None
        if row.action == "withdraw" and row.status != CONFIRMING:
            receipt = await _published_receipt(conn, row)
            if receipt is None:
                await _finish(conn, row, SKIPPED, "nothing was published on this channel", now)
                return None
        attempt = row.attempts + 1
        await conn.execute(
            deliveries.update()
            .where(deliveries.c.id == row.id)
            .values(
                status=SENDING,
                attempts=attempt,
                lease_until=now + timedelta(seconds=lease_seconds),
                updated_at=now,
            )
        )
        return Claim(
            id=row.id,
            key=delivery_key(row.item_id, row.version, row.channel),
            channel=row.channel,
            action=row.action,
            attempt=attempt,
            confirming=row.status == CONFIRMING,
            publication=_publication(row, item, version),
            receipt=receipt,
        )


def _claimable(row: Any, now: datetime) -> bool:
    if row.status in (PENDING, RETRYING, CONFIRMING):
        return True
    return bool(row.status == SENDING and row.lease_until is not None and row.lease_until < now)


_ITEM_COLUMNS = (
    items.c.status.label("item_status"),
    items.c.index_no,
    items.c.agency_code,
    items.c.domain,
    items.c.category,
    agencies.c.name.label("agency_name"),
)


async def _item_and_version(conn: AsyncConnection, row: Any) -> tuple[Any, Any]:
    """The delivery's item (with its agency's name) and version, in one query."""
    found = (
        await conn.execute(
            sa.select(item_versions, *_ITEM_COLUMNS)
            .join(items, items.c.id == item_versions.c.item_id)
            .join(agencies, agencies.c.code == items.c.agency_code)
            .where(item_versions.c.item_id == row.item_id, item_versions.c.version == row.version)
        )
    ).one()
    return found, found


async def _older_in_flight(conn: AsyncConnection, row: Any, now: datetime) -> bool:
    """Is an earlier version's delivery on this channel being sent or confirmed right now?"""
    if row.version == 1:
        return False  # the common case: nothing older exists
    busy = await conn.execute(
        sa.select(deliveries.c.id)
        .where(
            deliveries.c.item_id == row.item_id,
            deliveries.c.channel == row.channel,
            deliveries.c.version < row.version,
            sa.or_(
                deliveries.c.status == CONFIRMING,
                sa.and_(deliveries.c.status == SENDING, deliveries.c.lease_until >= now),
            ),
        )
        .limit(1)
    )
    return busy.first() is not None


def _own_receipt(row: Any) -> Receipt:
    return Receipt(external_id=row.external_id, url=row.url, steps=row.steps or {})


async def _published_receipt(conn: AsyncConnection, row: Any) -> Receipt | None:
    """The newest publication of this item on this channel: what a withdrawal takes down."""
    published = (
        await conn.execute(
            sa.select(deliveries)
            .where(
                deliveries.c.item_id == row.item_id,
                deliveries.c.channel == row.channel,
                deliveries.c.action == "publish",
                deliveries.c.status == PUBLISHED,
            )
            .order_by(deliveries.c.version.desc())
            .limit(1)
        )
    ).first()
    if published is None:
        return None
    return Receipt(
        external_id=published.external_id,
        url=published.url,
        confirmed_at=published.confirmed_at,
        steps=published.steps or {},
    )


def _publication(row: Any, item: Any, version: Any) -> Publication:
    return Publication(
        key=delivery_key(row.item_id, row.version, row.channel),
        item_id=row.item_id,
        version=row.version,
        action=row.action,
        index_no=item.index_no,
        agency_code=item.agency_code,
        agency_name=item.agency_name,
        domain=item.domain,
        category=item.category,
        title=version.title,
        summary=version.summary,
        body_html=version.body_html,
        fields=version.fields,
        withheld=tuple(version.withheld),
        formed_on=version.formed_on,
        changed_on=version.changed_on,
        decision=version.decision,
        project_code=version.project_code,
        region=version.region,
        document_number=version.document_number,
        keywords=tuple(version.keywords),
        validity=version.validity,
        change_note=version.change_note,
        approved_at=version.approved_at,
        steps=row.steps or {},
    )


async def _finish(
    conn: AsyncConnection, row: Any, status: str, reason: str | None, now: datetime
) -> None:
    await conn.execute(
        deliveries.update()
        .where(deliveries.c.id == row.id)
        .values(status=status, lease_until=None, last_error=reason, updated_at=now)
    )
    data = {"channel": row.channel, "reason": reason}
    await ledger.append_many(conn, [_event(row.item_id, row.version, row.id, status, now, data)])


def _event(
    item_id: int, version: int, delivery_id: int, status: str, at: datetime, data: dict[str, Any]
) -> ledger.Event:
    return ledger.Event(
        f"delivery.{status}", "dispatcher", item_id=item_id, version=version,
        delivery_id=delivery_id, at=at, data={"status": status, **data},
    )  # fmt: skip


async def _settle(
    engine: AsyncEngine, claim: Claim, status: str, values: dict[str, Any], data: dict[str, Any]
) -> bool:
    """Write an attempt's outcome and its ledger event, if this claim still holds the lease."""
    now = datetime.now(UTC)
    async with transaction(engine) as conn:
        updated = await conn.execute(
            deliveries.update()
            .where(
                deliveries.c.id == claim.id,
                deliveries.c.status == SENDING,
                deliveries.c.attempts == claim.attempt,
            )
            .values(status=status, lease_until=None, updated_at=now, **values)
        )
        if updated.rowcount != 1:
            return False  # the lease ran out and another worker took over: it reports
        pub = claim.publication
        data = {"channel": claim.channel, "attempt": claim.attempt, **data}
        await ledger.append_many(
            conn, [_event(pub.item_id, pub.version, claim.id, status, now, data)]
        )
    return True


async def record_receipt(engine: AsyncEngine, claim: Claim, receipt: Receipt) -> bool:
    """Store the channel's receipt: live (published/withdrawn) or sent and awaiting confirmation.

    Returns False if the lease was lost meanwhile (another worker took over); nothing is written.
    """
    values: dict[str, Any] = {
        "external_id": receipt.external_id,
        "url": receipt.url,
        "steps": {**claim.publication.steps, **receipt.steps},
    }
    if receipt.pending:
        status = CONFIRMING
        wait = timedelta(seconds=receipt.check_after or WAIT_FOR_ORDER)
        values["next_attempt_at"] = datetime.now(UTC) + wait
    else:
        status = PUBLISHED if claim.action == "publish" else TAKEN_DOWN
        values.update(confirmed_at=receipt.confirmed_at, last_error=None)
    confirmed = receipt.confirmed_at.isoformat() if receipt.confirmed_at else None
    data = {"external_id": receipt.external_id, "url": receipt.url, "confirmed_at": confirmed}
    return await _settle(engine, claim, status, values, data)


async def record_failure(
    engine: AsyncEngine, claim: Claim, error: str, retry_at: datetime | None
) -> bool:
    """Retry later (`retry_at`) or fail for good (None). False if the lease was lost."""
    status = RETRYING if retry_at is not None else FAILED
    values = {"next_attempt_at": retry_at, "last_error": error[:2000]}
    data = {"error": error[:500], "retry_at": retry_at.isoformat() if retry_at else None}
    return await _settle(engine, claim, status, values, data)


async def save_steps(engine: AsyncEngine, delivery_id: int, steps: dict[str, Any]) -> None:
    """Keep a multi-step channel's remote ids before its next step, so a retry resumes."""
    async with transaction(engine) as conn:
        current = (
            await conn.execute(sa.select(deliveries.c.steps).where(deliveries.c.id == delivery_id))
        ).scalar_one()
        await conn.execute(
            deliveries.update()
            .where(deliveries.c.id == delivery_id)
            .values(steps={**(current or {}), **steps})
        )


async def retry_by_hand(engine: AsyncEngine, actor: Actor, delivery_id: int) -> tuple[int, str]:
    """Put a failed delivery back in the queue; returns (id, job key) to enqueue."""
    async with transaction(engine) as conn:
        row = (
            await conn.execute(
                sa.select(deliveries, items.c.agency_code)
                .join(items, items.c.id == deliveries.c.item_id)
                .where(deliveries.c.id == delivery_id)
                .with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound(f"no delivery {delivery_id}")
        require(actor, "retry", row.agency_code)
        if row.status != FAILED:
            raise Conflict(f"delivery {delivery_id} is {row.status}; only failed ones are retried")
        now = datetime.now(UTC)
        await conn.execute(
            deliveries.update()
            .where(deliveries.c.id == delivery_id)
            .values(status=PENDING, attempts=0, next_attempt_at=now, updated_at=now)
        )
        event = ledger.Event(
            "delivery.retry_requested", actor.label, item_id=row.item_id, version=row.version,
            delivery_id=delivery_id, at=now, data={"channel": row.channel, "status": PENDING},
        )  # fmt: skip
        await ledger.append_many(conn, [event])
    return delivery_id, delivery_key(row.item_id, row.version, row.channel)
