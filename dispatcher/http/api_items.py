"""HTTP API routes under /api/v1: the catalogue, items, approval, revisions, withdrawal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from dispatcher.dispatch import queue
from dispatcher.errors import InputError, PermissionDenied
from dispatcher.http.auth import authenticated
from dispatcher.http.deps import DEPS
from dispatcher.http.openapi import openapi_document
from dispatcher.http.responses import json_response
from dispatcher.items import queries, workflow
from dispatcher.rules.intake import parse_json, sane_time
from dispatcher.rules.permissions import Actor, require

PREFIX = "/api/v1"
MAX_ID = 2**63 - 1  # ids are 64-bit: a larger cursor is not one this API gave


def _item_id(request: web.Request) -> int:
    return int(request.match_info["id"])


async def json_body(request: web.Request) -> bytes:
    """The raw body of a JSON request (size-limited by the app), or a 415 problem."""
    kind = request.content_type
    if kind != "application/json" and not kind.endswith("+json"):
        raise web.HTTPUnsupportedMediaType(text="send the item as application/json")
    return await request.read()


async def _item_response(
    request: web.Request, who: Actor, item_id: int, status: int = 200
) -> web.Response:
    async with request.app[DEPS].db.connect() as conn:
        body = await queries.item_json(conn, who, item_id)
    headers = {"Location": f"{PREFIX}/items/{item_id}"} if status == 201 else None
    return json_response(body, status, headers)


async def get_catalogue(request: web.Request) -> web.Response:
    return json_response(request.app[DEPS].rules.catalogue.to_json())


async def get_openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())


@authenticated
async def post_item(request: web.Request, who: Actor) -> web.Response:
    deps = request.app[DEPS]
    require(who, "submit")
    data = parse_json(await json_body(request))
    key = request.headers.get("Idempotency-Key")
    item_id, created = await workflow.submit(deps.db, deps.rules, who, data, key)
    response = await _item_response(request, who, item_id, 201 if created else 200)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def _enqueue(request: web.Request, item_id: int) -> None:
    deps = request.app[DEPS]
    if deps.queue is not None:
        async with deps.db.connect() as conn:
            rows = await queue.item_deliveries_due(conn, item_id)
        await queue.enqueue_rows(deps.queue, rows)


@authenticated
async def approve_item(request: web.Request, who: Actor) -> web.Response:
    await workflow.approve(request.app[DEPS].db, who, _item_id(request))
    await _enqueue(request, _item_id(request))
    return await _item_response(request, who, _item_id(request))


@authenticated
async def post_revision(request: web.Request, who: Actor) -> web.Response:
    deps = request.app[DEPS]
    require(who, "revise")
    data = parse_json(await json_body(request))
    await workflow.revise(deps.db, deps.rules, who, _item_id(request), data)
    return await _item_response(request, who, _item_id(request), 201)


@authenticated
async def withdraw_item(request: web.Request, who: Actor) -> web.Response:
    require(who, "withdraw")
    data = parse_json(await json_body(request))
    await workflow.withdraw(request.app[DEPS].db, who, _item_id(request), data)
    await _enqueue(request, _item_id(request))
    return await _item_response(request, who, _item_id(request))


@authenticated
async def get_item(request: web.Request, who: Actor) -> web.Response:
    return await _item_response(request, who, _item_id(request))


def page_params(request: web.Request) -> tuple[int | None, int]:
    """`?cursor=` (none: the first page) and `?limit=` (default 50) of a list, as numbers."""
    numbers: dict[str, int | None] = {}
    for name, default in (("cursor", None), ("limit", 50)):
        try:
            numbers[name] = int(request.query[name]) if name in request.query else default
        except ValueError:
            raise InputError([(name, "a whole number")]) from None
    cursor = numbers["cursor"]
    if cursor is not None and not 1 <= cursor <= MAX_ID:
        raise InputError([("cursor", "a next_cursor this API gave")])
    return cursor, numbers["limit"] or 0


def _list_query(request: web.Request) -> queries.ListQuery:
    q = request.query
    try:
        since = datetime.fromisoformat(q["since"]) if "since" in q else None
    except ValueError:
        raise InputError([("since", "an ISO 8601 time, e.g. 2026-11-01T00:00:00+08:00")]) from None
    if since is not None and since.tzinfo is None:
        raise InputError([("since", "give a time zone, e.g. +08:00")])
    if since is not None:
        try:
            sane_time(since, "since", ahead=False)  # a later `since` just finds nothing
        except ValueError as exc:
            raise InputError([("since", str(exc))]) from None
    cursor, limit = page_params(request)
    return queries.ListQuery(
        status=q.get("status"),
        domain=q.get("domain"),
        category=q.get("category"),
        since=since,
        cursor=cursor,
        limit=limit,
    )


@authenticated
async def list_items(request: web.Request, who: Actor) -> web.Response:
    agency = request.query.get("agency")
    if agency is not None and agency != who.agency_code:
        raise PermissionDenied("a token sees only its own agency's items")
    query = _list_query(request)
    async with request.app[DEPS].db.connect() as conn:
        page, cursor = await queries.list_items(conn, who, query)
    body: dict[str, Any] = {"items": page, "next_cursor": cursor}
    if cursor is not None:
        params = {k: v for k, v in request.query.items() if k != "cursor"}
        params["cursor"] = str(cursor)
        body["next"] = str(request.rel_url.with_query(params))
    return json_response(body)


def add_routes(app: web.Application) -> None:
    item = PREFIX + r"/items/{id:\d{1,15}}"
    app.router.add_get(PREFIX + "/catalogue", get_catalogue)
    app.router.add_get(PREFIX + "/openapi.json", get_openapi)
    app.router.add_post(PREFIX + "/items", post_item)
    app.router.add_get(PREFIX + "/items", list_items)
    app.router.add_get(item, get_item)
    app.router.add_post(item + "/approve", approve_item)
    app.router.add_post(item + "/revisions", post_revision)
    app.router.add_post(item + "/withdraw", withdraw_item)
