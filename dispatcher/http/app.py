"""The aiohttp application: resources, error mapping to RFC 9457 problem details, auth.

One place owns resources (`cleanup_ctx`): the database engine and the intake rules. Routes live in
`api_items.py`; this module is what every future route (site, dashboard, console) plugs into.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.errors import GongkaiError
from dispatcher.items import accounts
from dispatcher.rules.calendar import WorkCalendar
from dispatcher.rules.catalogue import default_catalogue
from dispatcher.rules.intake import Rules
from dispatcher.settings import Settings
from dispatcher.storage.db import create_engine

log = logging.getLogger(__name__)
PROBLEM_TYPE = "application/problem+json"


@dataclass(frozen=True)
class Deps:
    settings: Settings
    engine: AsyncEngine
    rules: Rules
    queue: ArqRedis | None  # None: no Redis configured here; the sweeper enqueues instead


DEPS = web.AppKey("deps", Deps)


def build_rules(settings: Settings) -> Rules:
    calendar = WorkCalendar.from_file(settings.calendar.overrides or None)
    return Rules(default_catalogue(), calendar, settings.channels.enabled)


def problem(
    status: int, title: str, detail: str, errors: list[tuple[str, str]] | None = None, **extra: Any
) -> web.Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    if errors:
        body["errors"] = [
            {"field": path, "pointer": _pointer(path), "detail": message}
            for path, message in errors
        ]
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False),
        content_type=PROBLEM_TYPE,
        headers=extra.get("headers"),
    )


def _pointer(path: str) -> str:
    """`fields.candidates[0].name` -> `#/fields/candidates/0/name` (RFC 6901 in a fragment)."""
    parts = path.replace("[", ".").replace("]", "").split(".")
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts if p)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as problem+json; nothing internal leaks into a 500."""
    try:
        return await handler(request)
    except GongkaiError as exc:
        return problem(exc.status, exc.title, exc.detail, exc.errors)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = exc.text or exc.reason
        if exc.status == 413:
            limit = request.app[DEPS].settings.server.max_body_bytes
            detail = f"the request body is larger than {limit} bytes"
        return problem(exc.status, exc.reason, detail, headers=_keep_headers(exc))
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return problem(500, "Internal error", "the server failed; the error was logged")


def _keep_headers(exc: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in exc.headers.items() if k in ("Allow", "WWW-Authenticate")}


async def actor(request: web.Request) -> accounts.Actor:
    """The token's actor, or a 401 problem."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        async with request.app[DEPS].engine.connect() as conn:
            found = await accounts.authenticate(conn, token.strip())
        if found is not None:
            return found
    raise web.HTTPUnauthorized(
        text="a valid bearer token is required (Authorization: Bearer gk_…)",
        headers={"WWW-Authenticate": 'Bearer realm="gongkai"'},
    )


async def json_body(request: web.Request) -> bytes:
    """The raw body of a JSON request (size-limited by the app), or a 415 problem."""
    if request.content_type not in ("application/json",) and not request.content_type.endswith(
        "+json"
    ):
        raise web.HTTPUnsupportedMediaType(text="send the item as application/json")
    return await request.read()


def create_app(
    settings: Settings, engine: AsyncEngine | None = None, redis_url: str | None = None
) -> web.Application:
    """The web app. Pass `engine` to share one (tests); otherwise it is made and disposed here.

    With `redis_url`, approvals, withdrawals and retries enqueue their deliveries at once;
    without, they wait for the sweeper.
    """
    from dispatcher.dispatch import queue as queues
    from dispatcher.http import api_deliveries, api_items, probes, public, search_page

    app = web.Application(
        client_max_size=settings.server.max_body_bytes, middlewares=[problems_middleware]
    )

    async def resources(app: web.Application) -> AsyncIterator[None]:
        own = engine is None
        eng = create_engine(settings.database_url) if engine is None else engine
        pool = queues.connect_lazily(redis_url) if redis_url else None
        app[DEPS] = Deps(settings, eng, build_rules(settings), pool)
        yield
        if pool is not None:
            await pool.aclose()
        if own:
            await eng.dispose()

    app.cleanup_ctx.append(resources)
    api_items.add_routes(app)
    api_deliveries.add_routes(app)
    probes.add_routes(app)
    search_page.add_routes(app)
    public.add_routes(app)
    return app
