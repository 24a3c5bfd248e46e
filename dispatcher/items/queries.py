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

from channels.base import SHANGHAI
from dispatcher.errors import InputError, NotFound
from dispatcher.items.accounts import Actor
from dispatcher.items.workflow import require
from dispatcher.storage.models import ITEM_STATES, PUBLISHED, deliveries, item_versions, items

MAX_PAGE = 200
FIRST_PLATFORM = "website"  # 第一平台: its publication time is the one the deadlines are kept by
_VERSION_META = ("kind", "status", "change_note", "changed_on", "submitted_at", "approved_at")
_CONTENT = (
    "title", "summary", "body_html", "formed_on", "decision", "approving_agency",
    "implementing_agency", "project_code", "region", "document_number", "keywords", "validity",
    "fields", "withheld", "channels", "publish_at", "late_reason", "deadline",
    "deadline_provisional",
)  # fmt: skip
_DELIVERY = (
    "id", "channel", "action", "status", "attempts", "next_attempt_at", "external_id", "url",
    "requested_at", "confirmed_at", "last_error",
)  # fmt: skip


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
    require(actor, "read", item.agency_code)
    versions = (
        await conn.execute(
            sa.select(item_versions)
            .where(item_versions.c.item_id == item_id)
            .order_by(item_versions.c.version)
        )
    ).all()
    rows = (
        await conn.execute(
            sa.select(deliveries).where(deliveries.c.item_id == item_id).order_by(deliveries.c.id)
        )
    ).all()
    by_version: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_version.setdefault(row.version, []).append(_pick(row, _DELIVERY))
    live = _first_platform(rows)
    out = _item_head(item)
    out.update(_pick(versions[-1], _CONTENT))
    out["first_published_at"] = _json(min(live.values(), default=None))
    out["versions"] = [
        {"version": v.version, **_pick(v, _VERSION_META), **_pick(v, _CONTENT),
         **_timeliness(v, live.get(v.version)), "deliveries": by_version.get(v.version, [])}
        for v in versions
    ]  # fmt: skip
    return out


def _first_platform(rows: Sequence[Any]) -> dict[int, datetime]:
    """Version -> when its website page went live: the publication time audits go by."""
    return {
        r.version: r.confirmed_at
        for r in rows
        if r.channel == FIRST_PLATFORM and r.action == "publish" and r.status == PUBLISHED
    }


def _timeliness(version: Any, published_at: datetime | None) -> dict[str, Any]:
    """`published_at` (website) and `on_time`: published no later than the deadline, in
    Beijing time; None while unpublished."""
    on_time = None
    if published_at is not None and version.deadline is not None:
        on_time = published_at.astimezone(SHANGHAI).date() <= version.deadline
    return {"published_at": _json(published_at), "on_time": on_time}


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
