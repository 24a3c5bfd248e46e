"""Followers' daily digests (群发): opened at each account's `digest_at`, sent like a delivery.

Every minute the worker's `digest` cron calls `tick`:

1. Open: once an account's `digest_at` (Beijing time) has passed today, it gets today's row
   (unique per account and day). Its window runs from where the last one's ended (the day
   before, for the first) to now; a digest still unsent from an earlier day (deferred for
   want of quota) is `merged` into it, so its items go out with today's, in one send. One
   whose send may have gone out (the answer was lost) is not merged: it is repeated alone.
2. Claim: a due row moves to `sending` with a lease, as a delivery does; a row whose lease ran
   out (its worker died) is claimed again and resumes from its saved steps.
3. Send: the items whose publish on that account was confirmed in the window, the live
   version of each, withdrawn ones left out, newest first up to the channel's limit, go to
   the channel's `send_digest`. Sent, deferred (busy, no quota: the next window), failed or
   skipped (nothing live in the window): each is a ledger event, like a delivery's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from channels.base import (
    SHANGHAI,
    ChannelError,
    Digest,
    DigestingChannel,
    PermanentError,
    Receipt,
    RetryableError,
)
from dispatcher.dispatch.channels import Enabled
from dispatcher.dispatch.deliveries import DELIVERY_CONTENT, publication
from dispatcher.rules.catalogue import Catalogue
from dispatcher.rules.states import Action, DeliveryStatus, DigestStatus, ItemStatus
from dispatcher.storage import ledger
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries, digests, item_versions, items

log = logging.getLogger(__name__)

ACTOR = "dispatcher"
RETRY_BASE = 30.0  # seconds before the first retry of a digest that failed for a while
RETRY_CAP = 3600.0


def digesters(channels: Mapping[str, Enabled]) -> dict[str, DigestingChannel]:
    """The enabled channels configured to send daily digests, by name."""
    return {name: e.digester for name, e in channels.items() if e.digester is not None}


async def tick(
    db: Database,
    catalogue: Catalogue,
    channels: Mapping[str, Enabled],
    now: datetime,
    lease: float,
    max_attempts: int,
) -> list[str]:
    """Open what is due, then send what can be sent; one line per digest acted on."""
    senders = digesters(channels)
    done = []
    for name, channel in senders.items():
        if await open_digest(db, name, channel, now):
            done.append(f"{name}: opened")
    for row in await claim_due(db, list(senders), now, lease):
        status = await _send(db, catalogue, senders[row.channel], row, now, max_attempts)
        done.append(f"{row.channel} {row.day}: {status}")
    return done


async def open_digest(db: Database, name: str, channel: DigestingChannel, now: datetime) -> bool:
    """Today's row for `name` if its time has come and it has none; True if it was opened."""
    if channel.digest_at is None:
        return False
    day = now.astimezone(SHANGHAI).date()
    cut = datetime.combine(day, channel.digest_at, tzinfo=SHANGHAI)
    if now < cut or await _has_row(db, name, day):
        return False
    try:
        async with db.transaction() as conn:
            rows = (
                await conn.execute(
                    sa.select(digests).where(digests.c.channel == name).order_by(digests.c.day)
                )
            ).all()
            if any(r.day == day for r in rows):
                return False
            # A send that may have gone out (its answer lost) is never merged: it is repeated
            # on its own, with its own clientmsgid, so followers are not notified twice.
            unsent = [
                r
                for r in rows
                if r.status == DigestStatus.PENDING and not (r.steps or {}).get("mass_sent")
            ]
            if unsent:
                start = min(r.window_start for r in unsent)
            else:
                start = rows[-1].cut_at if rows else cut - timedelta(days=1)
            new_id = (
                await conn.execute(
                    digests.insert()
                    .values(
                        channel=name,
                        day=day,
                        status=DigestStatus.PENDING,
                        window_start=start,
                        cut_at=now,
                        attempts=0,
                        next_attempt_at=now,
                        steps={},
                        requested_at=now,
                        updated_at=now,
                    )
                    .returning(digests.c.id)
                )
            ).scalar_one()
            batch = [_event("opened", name, day, now, digest_id=new_id, since=start.isoformat())]
            for old in unsent:
                await conn.execute(
                    digests.update()
                    .where(digests.c.id == old.id)
                    .values(
                        status=DigestStatus.MERGED,
                        merged_into=new_id,
                        next_attempt_at=None,
                        updated_at=now,
                    )
                )
                batch.append(_event("merged", name, old.day, now, digest_id=old.id,
                                    into=new_id, into_day=day.isoformat()))  # fmt: skip
            await ledger.append_many(conn, batch)
    except IntegrityError:  # another worker opened it first
        return False
    return True


async def _has_row(db: Database, name: str, day: Any) -> bool:
    async with db.connect() as conn:
        found = await conn.execute(
            sa.select(digests.c.id).where(digests.c.channel == name, digests.c.day == day)
        )
        return found.first() is not None


async def claim_due(db: Database, names: Sequence[str], now: datetime, lease: float) -> list[Any]:
    """Lease the due digests of `names` (pending and due, or sending with its lease run out)."""
    if not names:
        return []
    due = sa.and_(
        digests.c.channel.in_(names),
        sa.or_(
            sa.and_(digests.c.status == DigestStatus.PENDING, digests.c.next_attempt_at <= now),
            sa.and_(digests.c.status == DigestStatus.SENDING, digests.c.lease_until < now),
        ),
    )
    async with db.connect() as conn:
        found = (await conn.execute(sa.select(digests.c.id).where(due))).scalars().all()
    claimed = []
    for digest_id in found:
        async with db.transaction() as conn:
            row = (
                await conn.execute(
                    digests.update()
                    .where(digests.c.id == digest_id, due)
                    .values(
                        status=DigestStatus.SENDING,
                        attempts=digests.c.attempts + 1,
                        lease_until=now + timedelta(seconds=lease),
                        updated_at=now,
                    )
                    .returning(*digests.c)
                )
            ).first()
        if row is not None:
            claimed.append(row)
    return claimed


async def entries(
    db: Database, catalogue: Catalogue, row: Any, limit: int
) -> tuple[list[tuple[Any, Receipt]], int]:
    """What `row`'s window published on its channel: each item's live version once, withdrawn
    and superseded ones left out, newest first; and how many more there were than `limit`."""
    live = (
        DELIVERY_CONTENT.where(
            deliveries.c.channel == row.channel,
            deliveries.c.action == Action.PUBLISH,
            deliveries.c.status == DeliveryStatus.PUBLISHED,
            deliveries.c.confirmed_at > row.window_start,
            deliveries.c.confirmed_at <= row.cut_at,
            items.c.status != ItemStatus.WITHDRAWN,
            item_versions.c.status != ItemStatus.SUPERSEDED,
        )
        .order_by(deliveries.c.confirmed_at.desc(), deliveries.c.id.desc())
    )  # fmt: skip
    async with db.connect() as conn:
        rows = (await conn.execute(live)).all()
    found = []
    for r in rows:
        receipt = Receipt(external_id=r.external_id, url=r.url, confirmed_at=r.confirmed_at)
        found.append((publication(r, catalogue), receipt))
    return found[:limit], max(0, len(found) - limit)


async def _send(
    db: Database,
    catalogue: Catalogue,
    channel: DigestingChannel,
    row: Any,
    now: datetime,
    max_attempts: int,
) -> str:
    chosen, left_out = await entries(db, catalogue, row, channel.digest_max)
    if not chosen and not (row.steps or {}).get("mass_sent"):
        reason = "nothing published on the account in its window is still live"
        return await _finish(db, row, DigestStatus.SKIPPED, now, last_error=reason)

    async def save(steps: Mapping[str, Any]) -> None:
        if not await _save_steps(db, row, steps):
            raise RetryableError(f"digest {row.channel} {row.day}: lease lost")

    digest = Digest(
        key=f"{row.channel}:{row.day.isoformat()}", day=row.day, entries=tuple(chosen),
        left_out=left_out, steps=row.steps or {}, save=save,
    )  # fmt: skip
    sent = [[pub.item_id, pub.version] for pub, _ in chosen]
    try:
        receipt = await channel.send_digest(digest)
    except RetryableError as exc:
        if row.attempts >= max_attempts:
            return await _finish(db, row, DigestStatus.FAILED, now, last_error=str(exc))
        wait = exc.retry_after or min(RETRY_BASE * 2 ** (row.attempts - 1), RETRY_CAP)
        later = now + timedelta(seconds=wait)
        return await _finish(db, row, DigestStatus.PENDING, now, last_error=str(exc),
                             next_attempt_at=later)  # fmt: skip
    except (PermanentError, ChannelError) as exc:
        return await _finish(db, row, DigestStatus.FAILED, now, last_error=str(exc))
    return await _finish(
        db, row, DigestStatus.SENT, now, external_id=receipt.external_id,
        confirmed_at=receipt.confirmed_at or now, steps=dict(receipt.steps), last_error=None,
        data={"items": sent, "left_out": left_out},
    )  # fmt: skip


async def _save_steps(db: Database, row: Any, steps: Mapping[str, Any]) -> bool:
    async with db.transaction() as conn:
        done = await conn.execute(_guarded(row).values(steps=dict(steps)))
        return done.rowcount == 1


def _guarded(row: Any) -> sa.Update:
    """An update of `row` that holds only while this attempt still has it."""
    return digests.update().where(
        digests.c.id == row.id,
        digests.c.status == DigestStatus.SENDING,
        digests.c.attempts == row.attempts,
    )


async def _finish(
    db: Database,
    row: Any,
    status: DigestStatus,
    now: datetime,
    data: Mapping[str, Any] | None = None,
    **values: Any,
) -> str:
    """Write the attempt's outcome and its ledger event, if the attempt still holds the row."""
    kind = "deferred" if status == DigestStatus.PENDING else str(status)
    values = {"status": status, "lease_until": None, "updated_at": now, **values}
    event = _event(kind, row.channel, row.day, now, digest_id=row.id, attempt=row.attempts,
                   **{k: v for k, v in values.items()
                      if k in ("external_id", "last_error") and v is not None},
                   **(data or {}))  # fmt: skip
    async with db.transaction() as conn:
        done = await conn.execute(_guarded(row).values(**values))
        if done.rowcount != 1:
            return "lease lost"
        await ledger.append_many(conn, [event])
    if status == DigestStatus.FAILED:
        log.warning("digest %s %s failed: %s", row.channel, row.day, values.get("last_error"))
    return kind


def _event(kind: str, channel: str, day: Any, at: datetime, **data: Any) -> ledger.Event:
    payload = {"channel": channel, "day": day.isoformat(), **data}
    return ledger.Event(f"digest.{kind}", ACTOR, at=at, data=payload)
