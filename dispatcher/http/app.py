"""The aiohttp application: its resources, its routes, and errors as RFC 9457 problem details.

One place owns resources (`cleanup_ctx`): the database and the Redis pool; the rules are built
when the app is, so a bad catalogue or calendar file stops it before it serves. Every route
module adds its routes here; this is what future ones (the console) plug into.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from dispatcher.dispatch import queue as queues
from dispatcher.errors import GongkaiError, InputError
from dispatcher.http import (
    api_audit,
    api_deliveries,
    api_items,
    hooks,
    probes,
    public,
    search_page,
    site_templates,
)
from dispatcher.http.deps import DEPS, Deps
from dispatcher.http.responses import problem
from dispatcher.rules.rulebook import Rules, build_rules
from dispatcher.rules.text import anywhere_problem
from dispatcher.settings import Settings
from dispatcher.storage.db import Database

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as problem+json; nothing internal leaks into a 500."""
    try:
        _check_query(request)
        return await handler(request)
    except GongkaiError as exc:
        if exc.status >= 500:  # not the client's doing: logged; a 503 says what is missing
            log.error("%s %s: %s", request.method, request.path, exc.detail)
        if exc.status == 500:
            return problem(500, exc.title, "the server failed; the error was logged")
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return problem(exc.status, exc.title, exc.detail, exc.errors, headers=headers)
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


def _check_query(request: web.Request) -> None:
    """A query string holding what no text may (a NUL, an unpaired surrogate) is refused the
    same way on both databases, before any handler binds it into SQL."""
    for name, value in request.query.items():
        found = anywhere_problem(name) or anywhere_problem(value)
        if found:
            raise InputError([(f"?{name}", found)])


def _keep_headers(exc: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in exc.headers.items() if k in ("Allow", "WWW-Authenticate")}


def create_app(
    settings: Settings,
    db: Database | None = None,
    redis_url: str | None = None,
    rules: Rules | None = None,
) -> web.Application:
    """The web app. Pass `db` to share one (tests); otherwise it is opened and disposed here.

    With `redis_url`, approvals, withdrawals and retries enqueue their deliveries at once;
    without, they wait for the sweeper.
    """
    rules = rules or build_rules(settings)
    app = web.Application(
        client_max_size=settings.server.max_body_bytes, middlewares=[problems_middleware]
    )

    async def resources(app: web.Application) -> AsyncIterator[None]:
        own = db is None
        database = Database(settings.database_url) if db is None else db
        pool = queues.connect_lazily(redis_url) if redis_url else None
        app[DEPS] = Deps(settings, database, rules, pool)
        yield
        if pool is not None:
            await pool.aclose()
        if own:
            await database.dispose()

    app.cleanup_ctx.append(resources)
    api_items.add_routes(app)
    api_deliveries.add_routes(app)
    api_audit.add_routes(app)
    probes.add_routes(app)
    hooks.add_routes(app)
    site_templates.setup(app, settings)
    search_page.add_routes(app)
    public.add_routes(app)
    return app
