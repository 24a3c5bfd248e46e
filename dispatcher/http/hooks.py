"""`/hooks/NAME`: what a channel's remote pushes to us (WeChat's event push).

The channel reads and answers the push (`ChannelSpec.inbound`); here only what it means for the
deliveries is done: those it names are confirmed now rather than at their next look. Only
enabled channels that declare a handler have a hook; the rest are 404.
"""

from __future__ import annotations

import logging

from aiohttp import web

import channels
from channels.registry import spec_for
from dispatcher.dispatch import deliveries, queue
from dispatcher.http.deps import DEPS

log = logging.getLogger(__name__)
BODY_MAX = 65_536


async def hook(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    name = request.match_info["name"]
    spec = spec_for(channels.REGISTRY, name)
    if name not in deps.settings.channels.enabled or spec is None or spec.inbound is None:
        raise web.HTTPNotFound(text="no such hook")
    body = await request.content.read(BODY_MAX + 1)
    section = deps.settings.channels.section(name).model_dump()
    answer = spec.inbound(section, request.method, dict(request.query), body)
    if answer.wake:
        keys = await deliveries.confirm_now(deps.db, name, answer.wake)
        if keys and deps.queue is not None:
            await queue.hurry(deps.queue, keys)
        log.info("%s pushed %s: %d deliveries confirmed now", name, dict(answer.wake), len(keys))
    return web.Response(status=answer.status, text=answer.body, content_type="text/plain")


def add_routes(app: web.Application) -> None:
    app.router.add_route("GET", r"/hooks/{name:[a-z][a-z0-9_:]{0,63}}", hook)
    app.router.add_route("POST", r"/hooks/{name:[a-z][a-z0-9_:]{0,63}}", hook)
