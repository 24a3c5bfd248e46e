"""Items as JSON for the API: one item with its versions and deliveries, and list pages.

Withheld parts were removed at intake and are not stored, so nothing here can leak them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dispatcher.errors import InputError, NotFound
from dispatcher.rules.deadlines import on_time
from dispatcher.rules.permissions import Actor, require
from dispatcher.rules.states import ITEM_STATES, DeliveryStatus
from dispatcher.storage.models import (
    VERSION_CONTENT,
    deliveries,
    item_versions,
    items,
    live_on_first_platform,
)

MAX_PAGE = 200
_VERSION_META = ("kind", "status", "change_note", "changed_on", "submitted_at", "approved_at")
# A delivery as the API shows it, within its item (`GET /items/{id}`); the deliveries list
# adds which item version it carries.
DELIVERY_FIELDS = (
    "id", "channel", "action", "status", "attempts", "next_attempt_at", "external_id", "url",
    "requested_at", "confirmed_at", "last_error",
)  # fmt: skip
_LISTED_DELIVERY = ("id", "item_id", "version", *DELIVERY_FIELDS[1:])


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _pick(row: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    mapping = row._mapping
    return {key: _json(mapping[key]) for key in keys}


def _item_head(item: Any) -> dict[str, Any]:
    return {
        "id": item.id,
        "agency": item.agency_code,
        "domain": item.domain,
        "category": item.category,
        "status": item.status,
        "index_no": item.index_no,
        "latest_version": item.latest_version,
        "live_version": item.live_version,
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
    }


async def item_json(conn: AsyncConnection, actor: Actor, item_id: int) -> dict[str, Any]:
    """The item: its latest content at the top level, then every version with its deliveries."""
    item = (await conn.execute(sa.select(items).where(items.c.id == item_id))).first()
    if item is None:
        raise NotFound(f"no item {item_id}")
    require(actor, "read", item.agency_code, f"no item {item_id}")
    versions = (
        await conn.execute(
            sa.select(item_versions)
            .where(item_versions.c.item_id == item_id)
            .order_by(item_versions.c.version)
        )
    ).all()
    rows = (
        await conn.execute(
            sa.select(deliveries, live_on_first_platform(deliveries).label("first_platform"))
            .where(deliveries.c.item_id == item_id)
            .order_by(deliveries.c.id)
        )
    ).all()
    by_version: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_version.setdefault(row.version, []).append(_pick(row, DELIVERY_FIELDS))
    live = _first_platform(rows)
    out = _item_head(item)
    out.update(_pick(versions[-1], VERSION_CONTENT))
    out["first_published_at"] = _json(min(live.values(), default=None))
    out["versions"] = [
        {"version": v.version, **_pick(v, _VERSION_META), **_pick(v, VERSION_CONTENT),
         **_timeliness(v, live.get(v.version)), "deliveries": by_version.get(v.version, [])}
        for v in versions
    ]  # fmt: skip
    return out


def _first_platform(rows: Sequence[Any]) -> dict[int, datetime]:
    """Version -> when its website page went live: the publication time audits go by."""
    return {r.version: r.confirmed_at for r in rows if r.first_platform}


def _timeliness(version: Any, published_at: datetime | None) -> dict[str, Any]:
    """`published_at` (website) and `on_time`: published no later than the deadline, in
    Beijing time; None while unpublished."""
    return {"published_at": _json(published_at), "on_time": on_time(published_at, version.deadline)}


@dataclass(frozen=True)
class ListQuery:
    status: str | None = None
    domain: str | None = None
    category: str | None = None
    since: datetime | None = None
    cursor: int | None = None
    limit: int = 50

    def check(self) -> None:
        if self.status is not None and self.status not in ITEM_STATES:
            raise InputError([("status", f"one of {', '.join(ITEM_STATES)}")])
        if not 1 <= self.limit <= MAX_PAGE:
            raise InputError([("limit", f"between 1 and {MAX_PAGE}")])


async def list_items(
    conn: AsyncConnection, actor: Actor, query: ListQuery
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the actor's agency's items, newest first; returns (items, next cursor)."""
    require(actor, "read")
    query.check()
    latest = item_versions.alias("latest")
    stmt = (
        sa.select(items, latest.c.title, latest.c.deadline, latest.c.deadline_provisional)
        .join(
            latest,
            (latest.c.item_id == items.c.id) & (latest.c.version == items.c.latest_version),
        )
        .where(items.c.agency_code == actor.agency_code)
        .order_by(items.c.id.desc())
        .limit(query.limit + 1)
    )
    for column, value in (
        (items.c.status, query.status),
        (items.c.domain, query.domain),
        (items.c.category, query.category),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if query.since is not None:
        stmt = stmt.where(items.c.updated_at >= query.since)
    if query.cursor is not None:
        stmt = stmt.where(items.c.id < query.cursor)
    rows = (await conn.execute(stmt)).all()
    page = [
        {**_item_head(r), "title": r.title, "deadline": r.deadline.isoformat(),
         "deadline_provisional": r.deadline_provisional}
        for r in rows[: query.limit]
    ]  # fmt: skip
    next_cursor = page[-1]["id"] if len(rows) > query.limit else None
    return page, next_cursor


async def item_agency(conn: AsyncConnection, item_id: int) -> str:
    """The agency an item belongs to; NotFound if there is no such item."""
    agency = (
        await conn.execute(sa.select(items.c.agency_code).where(items.c.id == item_id))
    ).scalar()
    if agency is None:
        raise NotFound(f"no item {item_id}")
    return str(agency)


async def delivery_agency(conn: AsyncConnection, delivery_id: int) -> str:
    """The agency whose item a delivery carries; NotFound if there is no such delivery."""
    agency = (
        await conn.execute(
            sa.select(items.c.agency_code)
            .join(deliveries, deliveries.c.item_id == items.c.id)
            .where(deliveries.c.id == delivery_id)
        )
    ).scalar()
    if agency is None:
        raise NotFound(f"no delivery {delivery_id}")
    return str(agency)


async def list_deliveries(
    conn: AsyncConnection,
    actor: Actor,
    status: str | None,
    channel: str | None,
    cursor: int | None,
    limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the actor's agency's deliveries, newest first; returns (page, next cursor)."""
    require(actor, "read")
    if status is not None and status not in tuple(DeliveryStatus):
        raise InputError([("status", f"one of {', '.join(DeliveryStatus)}")])
    if not 1 <= limit <= MAX_PAGE:
        raise InputError([("limit", f"between 1 and {MAX_PAGE}")])
    stmt = (
        sa.select(deliveries)
        .join(items, items.c.id == deliveries.c.item_id)
        .where(items.c.agency_code == actor.agency_code)
        .order_by(deliveries.c.id.desc())
        .limit(limit + 1)
    )
    if status is not None:
        stmt = stmt.where(deliveries.c.status == status)
    if channel is not None:
        stmt = stmt.where(deliveries.c.channel == channel)
    if cursor is not None:
        stmt = stmt.where(deliveries.c.id < cursor)
    rows = (await conn.execute(stmt)).all()
    page = [delivery_json(r) for r in rows[:limit]]
    return page, page[-1]["id"] if len(rows) > limit else None


def delivery_json(row: Any) -> dict[str, Any]:
    """A delivery row as the deliveries list shows it."""
    return _pick(row, _LISTED_DELIVERY)
