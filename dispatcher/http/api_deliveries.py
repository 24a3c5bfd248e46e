"""HTTP API for deliveries: list them by state, retry a failed one by hand."""

from __future__ import annotations

from aiohttp import web

from dispatcher.dispatch import deliveries, queue
from dispatcher.http.api_items import PREFIX, page_params
from dispatcher.http.auth import authenticated
from dispatcher.http.deps import DEPS
from dispatcher.http.responses import json_response
from dispatcher.items import queries
from dispatcher.rules.permissions import Actor


@authenticated
async def list_deliveries(request: web.Request, who: Actor) -> web.Response:
    q = request.query
    cursor, limit = page_params(request)
    async with request.app[DEPS].db.connect() as conn:
        page, next_cursor = await queries.list_deliveries(
            conn, who, q.get("status"), q.get("channel"), cursor, limit
        )
    return json_response({"deliveries": page, "next_cursor": next_cursor})


@authenticated
async def retry_delivery(request: web.Request, who: Actor) -> web.Response:
    deps = request.app[DEPS]
    delivery_id = int(request.match_info["id"])
    await deliveries.retry_by_hand(deps.db, who, delivery_id)
    async with deps.db.connect() as conn:
        [row] = await queue.delivery_rows(conn, [delivery_id])
    await queue.enqueue_rows(deps.queue, [row])
    return json_response(queries.delivery_json(row))


def add_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX + "/deliveries", list_deliveries)
    app.router.add_post(PREFIX + r"/deliveries/{id:\d{1,15}}/retry", retry_delivery)
