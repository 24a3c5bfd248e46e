"""Delivery state transitions: claim with a lease, record the outcome, retry by hand.

SQL decides who works on a delivery: `claim_many` moves due rows to `sending` with a lease, in one
transaction, so two workers (or a worker and a restarted copy of its job) never both hold it while
the lease runs. A row whose lease ran out (its worker died mid-flight) is claimable again; the
channel's idempotency makes that second attempt harmless. Every outcome is a ledger event
(`outcomes` writes them).

Ordering per (item, channel): a newer version waits while an older one is in flight, and a
withdrawal waits for an in-flight publication, then takes down what was published.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from channels.base import Publication, Receipt
from dispatcher.dispatch import due
from dispatcher.dispatch.claims import Claim, Later, delivery_key
from dispatcher.dispatch.outcomes import WAIT_FOR_ORDER, Outcome, delivery_event, settle
from dispatcher.errors import Conflict, NotFound
from dispatcher.rules.catalogue import Catalogue
from dispatcher.rules.permissions import Actor, require
from dispatcher.rules.states import Action, DeliveryStatus, ItemStatus
from dispatcher.storage import ledger
from dispatcher.storage.db import Database
from dispatcher.storage.models import UTCDateTime, agencies, deliveries, item_versions, items


async def claim_many(
    db: Database, ids: Sequence[int], lease_seconds: int, catalogue: Catalogue
) -> list[Claim | Later | None]:
    """Lease many due deliveries in one transaction; results in the order of `ids`.

    For each: a Claim, Later (not due yet, or an older version is in flight), or None when
    there is nothing to do (finished, leased by another worker, or skipped just now).
    """
    return (await settle_and_claim(db, [], ids, lease_seconds, catalogue))[1]


async def settle_many(db: Database, outcomes: Sequence[Outcome]) -> list[bool]:
    """Write attempts' outcomes and their ledger events in one transaction.

    Each row is written only if its claim still holds the lease (same state and attempt);
    otherwise another worker took over and reports instead: False for that one.
    """
    return (await settle_and_claim(db, outcomes, [], 0, None))[0]


async def settle_and_claim(
    db: Database,
    outcomes: Sequence[Outcome],
    ids: Sequence[int],
    lease_seconds: int,
    catalogue: Catalogue | None,
) -> tuple[list[bool], list[Claim | Later | None]]:
    """`settle_many` then `claim_many`, in one transaction with one ledger append.

    A worker's jobs need both all the time; sharing the transaction halves the commits and the
    ledger head locks. The outcomes come first, so a claim of a row settled in the same batch
    sees its new state. Their rows are leased to this worker: another batch locks them only once
    the lease ran out, so the two lock orders (outcomes, then claims by id) cannot cross in
    practice; PostgreSQL would break such a deadlock by failing one batch, whose rows are sent
    again after their lease. Claims label their publications from `catalogue`.
    """
    if not outcomes and not ids:
        return [], []
    if ids and catalogue is None:
        raise ValueError("claims need the catalogue their publications are labelled from")
    now = datetime.now(UTC)
    async with db.transaction() as conn:
        written, events = await settle(conn, outcomes, now) if outcomes else ([], [])
        claims: list[Claim | Later | None] = []
        skipped: list[ledger.Event] = []
        if ids and catalogue is not None:
            claims, skipped = await _claim(conn, ids, lease_seconds, now, catalogue)
        await ledger.append_many(conn, events + skipped)
    return written, claims


async def _claim(
    conn: AsyncConnection,
    ids: Sequence[int],
    lease_seconds: int,
    now: datetime,
    catalogue: Catalogue,
) -> tuple[list[Claim | Later | None], list[ledger.Event]]:
    """Lease what is due among `ids` (see `claim_many`); also the events of those skipped."""
    decided: dict[int, Claim | Later | None] = {}
    dialect = conn.dialect.name
    found = await conn.execute(_CLAIM_ROWS[dialect], {"ids": sorted(set(ids))})
    skipped: list[ledger.Event] = []
    leased: list[int] = []
    for row in found:
        if due.claimable(row, now):
            wait = due.waiting_and_due(row, now)
            decided[row.id] = (
                Later(wait)
                if wait is not None
                else await _decide(conn, row, now, catalogue, skipped, leased)
            )
    if leased:
        lease = {"ids": leased, "now": now, "until": now + timedelta(seconds=lease_seconds)}
        await conn.execute(_LEASE[dialect], lease)
    seen: set[int] = set()
    results: list[Claim | Later | None] = []
    for delivery_id in ids:  # a duplicate request in one batch gets nothing to do
        results.append(None if delivery_id in seen else decided.get(delivery_id))
        seen.add(delivery_id)
    return results, skipped


async def _decide(
    conn: AsyncConnection,
    row: Any,
    now: datetime,
    catalogue: Catalogue,
    skipped: list[ledger.Event],
    leased: list[int],
) -> Claim | Later | None:
    """Skip it, make it wait for an older delivery, or lease it (its id added to `leased`)."""
    superseded = (
        row.version_status == ItemStatus.SUPERSEDED or row.item_status == ItemStatus.WITHDRAWN
    )
    if row.action == Action.PUBLISH and superseded:
        skipped.append(await _skip(conn, row, "superseded or withdrawn before it was sent", now))
        return None
    if await _older_in_flight(conn, row, now):
        return Later(WAIT_FOR_ORDER)
    receipt = _own_receipt(row) if row.status == DeliveryStatus.CONFIRMING else None
    if row.action == Action.WITHDRAW and row.status != DeliveryStatus.CONFIRMING:
        receipt = await _published_receipt(conn, row)
        if receipt is None:
            skipped.append(await _skip(conn, row, "nothing was published on this channel", now))
            return None
    pub = publication(row, catalogue)
    if row.action == Action.PUBLISH and row.version > 1:  # a revision: what it replaces
        pub = dataclasses.replace(pub, replaces=await _published_receipt(conn, row))
    leased.append(row.id)
    return Claim(
        id=row.id,
        key=delivery_key(row.item_id, row.version, row.channel),
        channel=row.channel,
        action=row.action,
        attempt=row.attempts + 1,
        confirming=row.status == DeliveryStatus.CONFIRMING,
        publication=pub,
        receipt=receipt,
    )


# What a channel receives of a version: the `Publication` fields stored on the version.
_CONTENT = tuple(
    f.name
    for f in dataclasses.fields(Publication)
    if f.name in item_versions.c and f.name not in deliveries.c
)

# A delivery with its version's content, its item's state and its agency's name: one row each
# (`publication` turns one into what a channel receives). A claim locks only the delivery rows
# (PostgreSQL); SQLite's BEGIN IMMEDIATE locks the database.
DELIVERY_CONTENT = (
    sa.select(
        deliveries,
        item_versions.c.status.label("version_status"),
        *(item_versions.c[name] for name in _CONTENT),
        items.c.status.label("item_status"),
        items.c.index_no,
        items.c.agency_code,
        items.c.domain,
        items.c.category,
        agencies.c.name.label("agency_name"),
    )
    .join(
        item_versions,
        sa.and_(
            item_versions.c.item_id == deliveries.c.item_id,
            item_versions.c.version == deliveries.c.version,
        ),
    )
    .join(items, items.c.id == deliveries.c.item_id)
    .join(agencies, agencies.c.code == items.c.agency_code)
)


def _ids_in(ids: sa.BindParameter[Any]) -> sa.ColumnElement[bool]:
    return deliveries.c.id.in_(ids) if ids.expanding else deliveries.c.id == sa.any_(ids)


def _claim_rows(ids: sa.BindParameter[Any]) -> sa.Select[Any]:
    return (
        DELIVERY_CONTENT.where(_ids_in(ids))
        .order_by(deliveries.c.id)  # one lock order for every batch: no deadlocks
        .with_for_update(of=deliveries)
    )


def _lease(ids: sa.BindParameter[Any]) -> sa.Update:
    return (
        deliveries.update()
        .where(_ids_in(ids))
        .values(
            status=DeliveryStatus.SENDING,
            attempts=deliveries.c.attempts + 1,
            lease_until=sa.bindparam("until", type_=UTCDateTime()),
            updated_at=sa.bindparam("now", type_=UTCDateTime()),
        )
    )


# The ids go in as one array on PostgreSQL (`= ANY(:ids)`): one statement whatever their number,
# prepared once per connection; SQLite, which has no arrays, gets `IN (…)`, expanded per call.
_ID_ARRAY = sa.bindparam("ids", type_=ARRAY(sa.BigInteger()))
_ID_LIST: sa.BindParameter[Any] = sa.bindparam("ids", expanding=True)
_CLAIM_ROWS = {"postgresql": _claim_rows(_ID_ARRAY), "sqlite": _claim_rows(_ID_LIST)}
_LEASE = {"postgresql": _lease(_ID_ARRAY), "sqlite": _lease(_ID_LIST)}


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
                deliveries.c.status == DeliveryStatus.CONFIRMING,
                sa.and_(
                    deliveries.c.status == DeliveryStatus.SENDING, deliveries.c.lease_until >= now
                ),
            ),
        )
        .limit(1)
    )
    return busy.first() is not None


def _own_receipt(row: Any) -> Receipt:
    return Receipt(external_id=row.external_id, url=row.url, steps=row.steps or {})


async def _published_receipt(conn: AsyncConnection, row: Any) -> Receipt | None:
    """The newest earlier publication of this item on this channel: what a withdrawal takes
    down, and what a revision replaces."""
    published = (
        await conn.execute(
            sa.select(deliveries)
            .where(
                deliveries.c.item_id == row.item_id,
                deliveries.c.channel == row.channel,
                deliveries.c.version < row.version,
                deliveries.c.action == Action.PUBLISH,
                deliveries.c.status == DeliveryStatus.PUBLISHED,
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


def publication(row: Any, catalogue: Catalogue) -> Publication:
    """What the channel receives, from a `DELIVERY_CONTENT` row, labelled from `catalogue`."""
    return Publication(
        key=delivery_key(row.item_id, row.version, row.channel),
        item_id=row.item_id,
        version=row.version,
        action=row.action,
        index_no=row.index_no,
        agency_code=row.agency_code,
        agency_name=row.agency_name,
        domain=row.domain,
        category=row.category,
        title=row.title,
        summary=row.summary,
        body_html=row.body_html,
        fields=row.fields,
        withheld=tuple(row.withheld),
        formed_on=row.formed_on,
        changed_on=row.changed_on,
        decision=row.decision,
        project_code=row.project_code,
        region=row.region,
        document_number=row.document_number,
        keywords=tuple(row.keywords),
        validity=row.validity,
        change_note=row.change_note,
        approved_at=row.approved_at,
        steps=row.steps or {},
        **catalogue.labels(row.domain, row.category),
    )


async def _skip(conn: AsyncConnection, row: Any, reason: str, now: datetime) -> ledger.Event:
    """Mark a delivery skipped (rare: one statement of its own); returns its ledger event."""
    await conn.execute(
        deliveries.update()
        .where(deliveries.c.id == row.id)
        .values(status=DeliveryStatus.SKIPPED, lease_until=None, last_error=reason, updated_at=now)
    )
    data = {"channel": row.channel, "reason": reason}
    return delivery_event(row.item_id, row.version, row.id, DeliveryStatus.SKIPPED, now, data)


async def save_steps(db: Database, claim: Claim, steps: Mapping[str, Any]) -> bool:
    """Store a multi-step channel's remote ids on its delivery, mid-attempt; False (nothing
    written) if this claim no longer holds the lease. `steps` is the whole set so far."""
    now = datetime.now(UTC)
    async with db.transaction() as conn:
        written = await conn.execute(
            deliveries.update()
            .where(
                deliveries.c.id == claim.id,
                deliveries.c.status == DeliveryStatus.SENDING,
                deliveries.c.attempts == claim.attempt,
            )
            .values(steps=dict(steps), updated_at=now)
        )
        if written.rowcount != 1:
            return False
        pub = claim.publication
        data = {"channel": claim.channel, "attempt": claim.attempt, "steps": sorted(steps)}
        event = ledger.Event(
            "delivery.steps_saved", "dispatcher", item_id=pub.item_id, version=pub.version,
            delivery_id=claim.id, at=now, data=data,
        )  # fmt: skip
        await ledger.append_many(conn, [event])
    return True


async def retry_by_hand(db: Database, actor: Actor, delivery_id: int) -> tuple[int, str]:
    """Put a failed delivery back in the queue; returns (id, job key) to enqueue."""
    async with db.transaction() as conn:
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
        require(actor, "retry", row.agency_code, f"no delivery {delivery_id}")
        if row.status != DeliveryStatus.FAILED:
            raise Conflict(f"delivery {delivery_id} is {row.status}; only failed ones are retried")
        now = datetime.now(UTC)
        await conn.execute(
            deliveries.update()
            .where(deliveries.c.id == delivery_id)
            .values(status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=now, updated_at=now)
        )
        event = ledger.Event(
            "delivery.retry_requested", actor.label, item_id=row.item_id, version=row.version,
            delivery_id=delivery_id, at=now,
            data={"channel": row.channel, "status": DeliveryStatus.PENDING},
        )  # fmt: skip
        await ledger.append_many(conn, [event])
    return delivery_id, delivery_key(row.item_id, row.version, row.channel)


async def confirm_now(db: Database, channel: str, wake: Mapping[str, str]) -> list[str]:
    """The channel's deliveries awaiting confirmation whose steps hold `wake`'s values become
    due now (a remote's push said they are done); their job keys, to run them now."""
    if not wake:
        return []
    now = datetime.now(UTC)
    async with db.transaction() as conn:
        rows = await conn.execute(
            sa.select(deliveries.c.id, deliveries.c.item_id, deliveries.c.version,
                      deliveries.c.steps)
            .where(deliveries.c.channel == channel,
                   deliveries.c.status == DeliveryStatus.CONFIRMING)
        )  # fmt: skip
        woken = [r for r in rows if all((r.steps or {}).get(k) == v for k, v in wake.items())]
        if woken:
            await conn.execute(
                deliveries.update()
                .where(deliveries.c.id.in_([r.id for r in woken]),
                       deliveries.c.status == DeliveryStatus.CONFIRMING)
                .values(next_attempt_at=now, updated_at=now)
            )  # fmt: skip
    return [delivery_key(r.item_id, r.version, channel) for r in woken]
