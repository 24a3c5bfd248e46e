"""The item workflow: submit, approve (先审后发), revise, withdraw — each one SQL transaction.

Approval writes the item's delivery rows (the outbox) and its ledger events in the same
transaction as the state change, so an approved item can never lack its deliveries. Concurrent
approvals race on a conditional UPDATE of the version's status: exactly one wins, the other sees
a 409. The 索引号 serial comes from a per-agency, per-year counter row updated in that same
transaction, so serials are unique and never reused even under concurrent approvals.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from channels.base import SHANGHAI
from dispatcher.errors import Conflict, InputError, NotFound, PermissionDenied
from dispatcher.items import search
from dispatcher.rules.deadlines import today
from dispatcher.rules.intake import ItemIn, RevisionIn, WithdrawIn, check_item, pydantic_errors
from dispatcher.rules.permissions import Actor, require
from dispatcher.rules.rulebook import Rules
from dispatcher.rules.states import Action, ItemStatus, VersionKind
from dispatcher.rules.withholding import WITHHOLDABLE_ROOTS
from dispatcher.storage import ledger, outbox
from dispatcher.storage.db import Database
from dispatcher.storage.ledger import canonical_json
from dispatcher.storage.models import (
    VERSION_CONTENT,
    agencies,
    index_counters,
    item_versions,
    items,
)

_CONTENT_KEYS = tuple(ItemIn.model_fields)
# Versions a newer approved one supersedes: waiting for approval, approved or scheduled.
_OPEN = (ItemStatus.SUBMITTED, ItemStatus.APPROVED, ItemStatus.SCHEDULED)


def version_hash(values: dict[str, Any]) -> str:
    """A digest of a version's stored content, recorded in the ledger event that creates it."""
    return hashlib.sha256(canonical_json(_jsonable(values)).encode()).hexdigest()


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(values, default=str, ensure_ascii=False))
    return out


async def submit(
    db: Database,
    rules: Rules,
    actor: Actor,
    data: dict[str, Any],
    idempotency_key: str | None = None,
) -> tuple[int, bool]:
    """Store a new item (status `submitted`); returns (item id, created?)."""
    require(actor, "submit")
    request_hash = hashlib.sha256(canonical_json(data).encode()).hexdigest()
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= 200:
            raise InputError([("Idempotency-Key", "must be 1 to 200 characters")])
        existing = await _replay(db, actor, idempotency_key, request_hash)
        if existing is not None:
            return existing, False
    draft = check_item(data, rules, actor.agency_code)
    now = datetime.now(UTC)
    try:
        async with db.transaction() as conn:
            result = await conn.execute(
                items.insert().values(
                    agency_code=actor.agency_code,
                    domain=data["domain"],
                    category=data["category"],
                    status=ItemStatus.SUBMITTED,
                    latest_version=1,
                    idempotency_key=idempotency_key,
                    request_hash=request_hash,
                    created_at=now,
                    updated_at=now,
                )
            )
            item_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            event = await _insert_version(
                conn, item_id, 1, VersionKind.ORIGINAL, draft.values, actor, now
            )
            await ledger.append_many(conn, [event])
    except IntegrityError:
        # Lost a race with the same Idempotency-Key: the other request's item is the answer.
        if idempotency_key is None:
            raise
        existing = await _replay(db, actor, idempotency_key, request_hash)
        if existing is None:
            raise
        return existing, False
    return item_id, True


async def _replay(db: Database, actor: Actor, key: str, request_hash: str) -> int | None:
    async with db.connect() as conn:
        row = (
            await conn.execute(
                sa.select(items.c.id, items.c.request_hash).where(
                    items.c.agency_code == actor.agency_code, items.c.idempotency_key == key
                )
            )
        ).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise InputError([("Idempotency-Key", "already used for a different item; use a new key")])
    return int(row.id)


async def _insert_version(
    conn: AsyncConnection,
    item_id: int,
    version: int,
    kind: str,
    values: dict[str, Any],
    actor: Actor,
    now: datetime,
    status: str = ItemStatus.SUBMITTED,
    change_note: str | None = None,
    changed_on: date | None = None,
) -> ledger.Event:
    row = dict(values, change_note=change_note, changed_on=changed_on)
    await conn.execute(
        item_versions.insert().values(
            item_id=item_id,
            version=version,
            kind=kind,
            status=status,
            submitted_by=actor.holder,
            submitted_at=now,
            **row,
        )
    )
    return ledger.Event(
        f"item.{'submitted' if kind != VersionKind.WITHDRAWAL else 'withdrawn'}",
        actor.label,
        item_id=item_id,
        version=version,
        at=now,
        data={
            "kind": kind,
            "deadline": str(values["deadline"]),
            "deadline_provisional": values["deadline_provisional"],
            "change_note": change_note,
            "content_sha256": version_hash(row),
        },
    )


async def _lock_item(conn: AsyncConnection, actor: Actor, item_id: int, action: str) -> Any:
    require(actor, action)
    item = (
        await conn.execute(sa.select(items).where(items.c.id == item_id).with_for_update())
    ).first()
    if item is None:
        raise NotFound(f"no item {item_id}")
    require(actor, action, item.agency_code, f"no item {item_id}")
    return item


async def approve(db: Database, actor: Actor, item_id: int) -> None:
    """Approve the item's pending version, assign its 索引号 and write its deliveries."""
    async with db.transaction() as conn:
        item = await _lock_item(conn, actor, item_id, "approve")
        version = (
            await conn.execute(
                sa.select(item_versions).where(
                    item_versions.c.item_id == item_id,
                    item_versions.c.version == item.latest_version,
                )
            )
        ).one()
        if version.status != ItemStatus.SUBMITTED:
            raise Conflict(f"item {item_id} has no version awaiting approval (it is {item.status})")
        if version.submitted_by == actor.holder:
            raise PermissionDenied("先审后发: an approver cannot approve their own submission")
        now = datetime.now(UTC)
        status = (
            ItemStatus.SCHEDULED
            if version.publish_at and version.publish_at > now
            else ItemStatus.APPROVED
        )
        won = await conn.execute(
            item_versions.update()
            .where(
                item_versions.c.item_id == item_id,
                item_versions.c.version == version.version,
                item_versions.c.status == ItemStatus.SUBMITTED,
            )
            .values(status=status, approved_by=actor.holder, approved_at=now)
        )
        if won.rowcount != 1:
            raise Conflict(f"item {item_id} was approved by someone else just now")
        index_no = item.index_no or await _next_index_no(conn, item.agency_code, now)
        await _supersede_older(conn, item_id, version.version)
        await search.index_version(conn, item_id, version.version, version.title, version.summary)
        await conn.execute(
            items.update()
            .where(items.c.id == item_id)
            .values(status=status, live_version=version.version, index_no=index_no, updated_at=now)
        )
        approved = ledger.Event(
            "item.approved",
            actor.label,
            item_id=item_id,
            version=version.version,
            at=now,
            data={"status": status, "index_no": index_no},
        )
        start = max(version.publish_at or now, now)
        created = await outbox.write_deliveries(
            conn, item_id, version.version, version.channels, Action.PUBLISH, start
        )
        await ledger.append_many(conn, [approved, *created])


async def _next_index_no(conn: AsyncConnection, agency_code: str, now: datetime) -> str:
    year = now.astimezone(SHANGHAI).year
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(
        dialect.insert(index_counters)
        .values(agency_code=agency_code, year=year, last_serial=0)
        .on_conflict_do_nothing()
    )
    serial = (
        await conn.execute(
            index_counters.update()
            .where(index_counters.c.agency_code == agency_code, index_counters.c.year == year)
            .values(last_serial=index_counters.c.last_serial + 1)
            .returning(index_counters.c.last_serial)
        )
    ).scalar_one()
    prefix = (
        await conn.execute(sa.select(agencies.c.index_prefix).where(agencies.c.code == agency_code))
    ).scalar_one()
    return f"{prefix}/{year}-{serial:05d}"


async def _supersede_older(conn: AsyncConnection, item_id: int, version: int) -> None:
    await conn.execute(
        item_versions.update()
        .where(
            item_versions.c.item_id == item_id,
            item_versions.c.version < version,
            item_versions.c.status.in_(_OPEN),
        )
        .values(status=ItemStatus.SUPERSEDED)
    )


async def revise(
    db: Database, rules: Rules, actor: Actor, item_id: int, data: dict[str, Any]
) -> None:
    """Submit a new version (变更); it needs approval, and its clock starts at its change date."""
    try:
        revision = RevisionIn.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        raise InputError(pydantic_errors(exc)) from None
    changed_on = revision.changed_on or today()
    async with db.transaction() as conn:
        item = await _lock_item(conn, actor, item_id, "revise")
        if item.status == ItemStatus.WITHDRAWN:
            raise Conflict(f"item {item_id} is withdrawn; it cannot be revised")
        latest = await _version(conn, item_id, item.latest_version)
        if changed_on > today() or changed_on < latest.formed_on:
            raise InputError([("changed_on", "must lie between formed_on and today")])
        merged, carried = _merge(latest, revision.model_extra or {}, rules.enabled_channels)
        for key in ("domain", "category"):
            if merged[key] != getattr(item, key):
                raise InputError([(key, "a revision cannot change the domain or category")])
        draft = check_item(merged, rules, actor.agency_code, changed_on)
        draft.values["withheld"] = carried + draft.values["withheld"]
        now = datetime.now(UTC)
        new_version = item.latest_version + 1
        await conn.execute(
            item_versions.update()
            .where(
                item_versions.c.item_id == item_id, item_versions.c.status == ItemStatus.SUBMITTED
            )
            .values(status=ItemStatus.SUPERSEDED)
        )
        event = await _insert_version(
            conn, item_id, new_version, VersionKind.REVISION, draft.values, actor, now,
            change_note=revision.change_note, changed_on=changed_on,
        )  # fmt: skip
        await conn.execute(
            items.update()
            .where(items.c.id == item_id)
            .values(status=ItemStatus.SUBMITTED, latest_version=new_version, updated_at=now)
        )
        await ledger.append_many(conn, [event])


def _merge(
    latest: Any, changes: dict[str, Any], enabled: tuple[str, ...]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The latest version's content with `changes` applied, and the withheld notes carried over.

    Carried notes are those for parts the revision does not resend: those parts stay as stored,
    already without what was withheld.
    """
    merged = {key: getattr(latest, key) for key in _CONTENT_KEYS if hasattr(latest, key)}
    merged.update(
        formed_on=latest.formed_on.isoformat(), secrecy="none", withheld=[],
        publish_at=latest.publish_at.isoformat() if latest.publish_at else None,
        channels=[c for c in latest.channels if c in enabled] or None,
    )  # fmt: skip
    merged.update(changes)
    carried = [
        w
        for w in latest.withheld
        if w["field"].split(".")[0].split("[")[0] not in changes
        and w["field"].split(".")[0] in WITHHOLDABLE_ROOTS
    ]
    return merged, carried


async def _version(conn: AsyncConnection, item_id: int, version: int) -> Any:
    return (
        await conn.execute(
            sa.select(item_versions, items.c.domain, items.c.category)
            .join(items, items.c.id == item_versions.c.item_id)
            .where(item_versions.c.item_id == item_id, item_versions.c.version == version)
        )
    ).one()


async def withdraw(db: Database, actor: Actor, item_id: int, data: dict[str, Any]) -> None:
    """Withdraw the item at once: a withdrawal version, and a takedown on every channel it is on."""
    try:
        request = WithdrawIn.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        raise InputError(pydantic_errors(exc)) from None
    reason, changed_on = request.reason, request.changed_on or today()
    async with db.transaction() as conn:
        item = await _lock_item(conn, actor, item_id, "withdraw")
        if item.status == ItemStatus.WITHDRAWN:
            raise Conflict(f"item {item_id} is already withdrawn")
        base = await _version(conn, item_id, item.live_version or item.latest_version)
        if changed_on > today() or changed_on < base.formed_on:
            raise InputError([("changed_on", "must lie between formed_on and today")])
        values = {key: getattr(base, key) for key in VERSION_CONTENT}
        now = datetime.now(UTC)
        new_version = item.latest_version + 1
        await _supersede_older(conn, item_id, new_version)
        event = await _insert_version(
            conn, item_id, new_version, VersionKind.WITHDRAWAL, values, actor, now,
            status=ItemStatus.APPROVED, change_note=reason, changed_on=changed_on,
        )  # fmt: skip
        await conn.execute(
            item_versions.update()
            .where(item_versions.c.item_id == item_id, item_versions.c.version == new_version)
            .values(approved_by=actor.holder, approved_at=now)
        )
        await conn.execute(
            items.update()
            .where(items.c.id == item_id)
            .values(status=ItemStatus.WITHDRAWN, latest_version=new_version, updated_at=now)
        )
        takedowns = []
        if item.live_version is not None:
            takedowns = await outbox.write_deliveries(
                conn, item_id, new_version, base.channels, Action.WITHDRAW, now
            )
        await ledger.append_many(conn, [event, *takedowns])
