"""HTTP API for deliveries: list them by state, retry a failed one by hand."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web

from dispatcher.dispatch import deliveries, queue
from dispatcher.errors import InputError
from dispatcher.http.api_items import PREFIX, json_response
from dispatcher.http.app import DEPS, actor
from dispatcher.items import workflow
from dispatcher.storage.models import DELIVERY_STATES, items
from dispatcher.storage.models import deliveries as table

MAX_PAGE = 200
_FIELDS = (
    "id", "item_id", "version", "channel", "action", "status", "attempts", "next_attempt_at",
    "external_id", "url", "requested_at", "confirmed_at", "last_error",
)  # fmt: skip


def _row(row: Any) -> dict[str, Any]:
    out = {}
    for key in _FIELDS:
        value = getattr(row, key)
        out[key] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


async def list_deliveries(request: web.Request) -> web.Response:
    who = await actor(request)
    workflow.require(who, "read")
    q = request.query
    status, channel = q.get("status"), q.get("channel")
    if status is not None and status not in DELIVERY_STATES:
        raise InputError([("status", f"one of {', '.join(DELIVERY_STATES)}")])
    try:
        limit = int(q.get("limit", "50"))
        cursor = int(q["cursor"]) if "cursor" in q else None
    except ValueError:
        raise InputError([("limit", "whole numbers for limit and cursor")]) from None
    if not 1 <= limit <= MAX_PAGE:
        raise InputError([("limit", f"between 1 and {MAX_PAGE}")])
    stmt = (
        sa.select(table)
        .join(items, items.c.id == table.c.item_id)
        .where(items.c.agency_code == who.agency_code)
        .order_by(table.c.id.desc())
        .limit(limit + 1)
    )
    if status is not None:
        stmt = stmt.where(table.c.status == status)
    if channel is not None:
        stmt = stmt.where(table.c.channel == channel)
    if cursor is not None:
        stmt = stmt.where(table.c.id < cursor)
    async with request.app[DEPS].engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    page = [_row(r) for r in rows[:limit]]
    next_cursor = page[-1]["id"] if len(rows) > limit else None
    return json_response({"deliveries": page, "next_cursor": next_cursor})


async def retry_delivery(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    who = await actor(request)
    delivery_id = int(request.match_info["id"])
    await deliveries.retry_by_hand(deps.engine, who, delivery_id)
    async with deps.engine.connect() as conn:
        row = (await conn.execute(sa.select(table).where(table.c.id == delivery_id))).one()
    await queue.enqueue_rows(deps.queue, [row])
    return json_response(_row(row))


def add_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX + "/deliveries", list_deliveries)
    app.router.add_post(PREFIX + r"/deliveries/{id:\d{1,15}}/retry", retry_delivery)
