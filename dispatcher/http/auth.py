"""Bearer tokens: each request is authenticated once, and the handler is handed its actor.

`@authenticated` wraps a handler taking `(request, actor)`: the token is looked up before the
handler runs (a 401 problem if it is missing, unknown or revoked), so no handler, and nothing a
handler calls, looks it up again.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from dispatcher.http.deps import DEPS
from dispatcher.items import accounts
from dispatcher.rules.permissions import Actor

ActorHandler = Callable[[web.Request, Actor], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _actor(request: web.Request) -> Actor:
    """The token's actor, or a 401 problem."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        async with request.app[DEPS].db.connect() as conn:
            found = await accounts.authenticate(conn, token.strip())
        if found is not None:
            return found
    raise web.HTTPUnauthorized(
        text="a valid bearer token is required (Authorization: Bearer gk_…)",
        headers={"WWW-Authenticate": 'Bearer realm="gongkai"'},
    )


def authenticated(handler: ActorHandler) -> Handler:
    """The handler, called with the request's actor (looked up once)."""

    @functools.wraps(handler)
    async def with_actor(request: web.Request) -> web.StreamResponse:
        return await handler(request, await _actor(request))

    return with_actor
