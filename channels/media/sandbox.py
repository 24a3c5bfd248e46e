"""A local news outlet that receives `media:NAME` events, all state in memory.

Tests, `gongkai serve --sandbox`, `gongkai demo` and the benchmarks point a media channel at
`{base_url}/outlets/{name}/events` instead of a real outlet. It speaks the protocol an outlet is
asked to speak (Standard Webhooks, `docs/media/guide.md`), checked strictly:

- `POST /outlets/{name}/events`: the `webhook-signature` must verify, by the `standardwebhooks`
  package, with one of the outlet's `secrets` (a rotation's several signatures: any one), and
  `webhook-timestamp` be within 5 minutes of now; else 401 `{"error": …}`. The body must be a
  UTF-8 JSON object with a known `type` and integer `data.item_id` and `data.version`; else 400.
  A `webhook-id` seen before is a retry: answered 200 with the first answer, counted in
  `duplicates`, not recorded again. Any other event is accepted: recorded as a `Received` and
  answered 200 `{"id": "art-N", "url": …}`, the article's URL built from the request's host.
- `script` makes the outlet misbehave on demand, one entry per POST (duplicates and refusals
  included), before anything else is looked at: an int answers that status without accepting
  (429 and 503 with `Retry-After: 1`; a 3xx with a `Location`); a float handles the POST as
  usual, then waits that many seconds before answering — the event is received even when the
  sender gave up, so its retry is a duplicate.
- Every refusal is recorded in `refused` with its status and reason; bodies over `BODY_LIMIT`
  answer 413. Nothing a client sends makes it answer 500.

`/outlets/` shows in Chinese what each outlet received; `/outlets/{name}/` an outlet's events and
refusals; `/outlets/{name}/articles/{n}` one article. The markup is `sandbox_page`.

State lives in `OutletSandbox` and its `Outlet`s, not in the server: `running_outlets` may stop
and serve the same sandbox again on the same port, an outlet that was down for a while.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from channels.media import sandbox_page
from channels.media.settings import new_secret
from channels.standins import serving

__all__ = [
    "BODY_LIMIT",
    "EVENT_TYPES",
    "Outlet",
    "OutletSandbox",
    "Received",
    "RunningOutlets",
    "new_secret",
    "running_outlets",
]

BODY_LIMIT = 2 * 1_048_576  # bytes of a request body; larger ones answer 413
EVENT_TYPES = frozenset({"item.published", "item.revised", "item.withdrawn"})
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # an outlet's name: one path segment as it is
_NUMBER = re.compile(r"^[0-9]{1,9}$")  # an article's number in its URL
_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_RETRY_AFTER = frozenset({429, 503})
_NO_BODY = frozenset({204, 205, 304})
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


@dataclass
class Received:
    """One accepted event: the first receipt of its `webhook_id`."""

    webhook_id: str
    type: str  # the event's `type`: item.published, item.revised, item.withdrawn
    item_id: int
    version: int
    data: dict[str, Any]  # the event's `data`, as sent
    article_id: str  # "art-1", "art-2", … in the outlet's order of acceptance
    received_at: datetime
    url: str = ""  # the article's URL, as answered (and answered again to a retry)


@dataclass
class Outlet:
    """One outlet and everything it was sent. Tests read the fields and may set `script`."""

    name: str
    secrets: list[str] = field(default_factory=lambda: [new_secret()])  # any one verifies
    received: list[Received] = field(default_factory=list)  # accepted, each webhook-id once
    attempts: int = 0  # every POST, duplicates and refusals included
    duplicates: int = 0  # POSTs whose webhook-id was already accepted
    refused: list[tuple[int, str]] = field(default_factory=list)  # (status, reason)
    script: list[int | float] = field(default_factory=list)  # faults for the next POSTs
    _by_id: dict[str, Received] = field(default_factory=dict, init=False, repr=False,
                                        compare=False)  # fmt: skip

    def types(self, item_id: int) -> list[str]:
        """The accepted event types for one item, in arrival order."""
        return [r.type for r in self.received if r.item_id == item_id]

    def first(self, webhook_id: str) -> Received | None:
        """The event accepted under `webhook_id`, if one was."""
        return self._by_id.get(webhook_id)

    def article(self, number: int) -> Received | None:
        """The event accepted as article `number` (`art-{number}`), if any."""
        wanted = f"art-{number}"
        return next((r for r in self.received if r.article_id == wanted), None)

    def accept(self, webhook_id: str, event: dict[str, Any], origin: str) -> Received:
        """Record a checked `event` as the next article; its URL is built on `origin`."""
        number = len(self._by_id) + 1
        data: dict[str, Any] = event["data"]
        received = Received(
            webhook_id=webhook_id,
            type=event["type"],
            item_id=data["item_id"],
            version=data["version"],
            data=data,
            article_id=f"art-{number}",
            received_at=datetime.now(UTC),
            url=f"{origin}/outlets/{self.name}/articles/{number}",
        )
        self.received.append(received)
        self._by_id[webhook_id] = received
        return received


class _Refusal(Exception):
    """An answer that refuses the POST: its status and reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class OutletSandbox:
    """The outlets' state; `app()` serves it."""

    def __init__(self, outlets: Iterable[Outlet] = ()) -> None:
        self.outlets: dict[str, Outlet] = {}
        for outlet in outlets:
            self.add(outlet)

    def add(self, outlet: Outlet) -> Outlet:
        """Add (or replace) an outlet; its name must be one URL path segment ([A-Za-z0-9_-])."""
        if not _NAME.match(outlet.name):
            raise ValueError(f"outlet name {outlet.name!r}: letters, digits, _ and - only")
        self.outlets[outlet.name] = outlet
        return outlet

    def app(self) -> web.Application:
        """A new aiohttp application serving this sandbox (one per server run)."""
        app = web.Application(client_max_size=BODY_LIMIT)
        app.router.add_post("/outlets/{name}/events", self._events)
        app.router.add_get("/outlets", self._to_overview)
        app.router.add_get("/outlets/", self._overview)
        app.router.add_get("/outlets/{name}", self._to_outlet)
        app.router.add_get("/outlets/{name}/", self._outlet_page)
        app.router.add_get("/outlets/{name}/articles/{number}", self._article_page)
        return app

    # -- events ----------------------------------------------------------------------------

    async def _events(self, request: web.Request) -> web.StreamResponse:
        outlet = self.outlets.get(request.match_info["name"])
        if outlet is None:
            return web.json_response({"error": "unknown outlet"}, status=404)
        outlet.attempts += 1
        fault = outlet.script.pop(0) if outlet.script else None
        if isinstance(fault, int):
            return _scripted(outlet, request, fault)
        try:
            response = await self._receive(outlet, request)
        except _Refusal as refusal:
            outlet.refused.append((refusal.status, refusal.reason))
            response = web.json_response({"error": refusal.reason}, status=refusal.status)
        if fault is not None and fault > 0:
            await asyncio.sleep(fault)  # received, but slow to say so
        return response

    async def _receive(self, outlet: Outlet, request: web.Request) -> web.Response:
        """Accept the event, or answer a retry as the first time; `_Refusal` if it is refused."""
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _Refusal(413, f"body over {BODY_LIMIT} bytes") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Refusal(400, "body is not UTF-8") from None
        headers = {name: request.headers.get(name, "") for name in _HEADERS}
        _verify(outlet.secrets, text, headers)
        msg_id = headers["webhook-id"]
        event = _event(text)
        first = outlet.first(msg_id)
        if first is not None:
            outlet.duplicates += 1
            return web.json_response(_answer(first))
        return web.json_response(_answer(outlet.accept(msg_id, event, _origin(request))))

    # -- pages -----------------------------------------------------------------------------

    async def _to_overview(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/outlets/")

    async def _to_outlet(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in self.outlets:
            return _page(sandbox_page.notice("没有这个媒体"), 404)
        raise web.HTTPFound(f"/outlets/{name}/")

    async def _overview(self, request: web.Request) -> web.Response:
        return _page(sandbox_page.overview(list(self.outlets.values())))

    async def _outlet_page(self, request: web.Request) -> web.Response:
        outlet = self.outlets.get(request.match_info["name"])
        if outlet is None:
            return _page(sandbox_page.notice("没有这个媒体"), 404)
        return _page(sandbox_page.outlet(outlet))

    async def _article_page(self, request: web.Request) -> web.Response:
        outlet = self.outlets.get(request.match_info["name"])
        number = request.match_info["number"]
        found = outlet.article(int(number)) if outlet and _NUMBER.match(number) else None
        if outlet is None or found is None:
            return _page(sandbox_page.notice("没有这篇稿件"), 404)
        return _page(sandbox_page.article(outlet, found))


def _scripted(outlet: Outlet, request: web.Request, status: int) -> web.Response:
    """The answer a scripted status stands for; nothing is accepted."""
    if isinstance(status, bool) or not 200 <= status <= 599:
        status, reason = 500, f"script entry {status!r} is not an HTTP status"
    else:
        reason = f"scripted HTTP {status}"
    headers = {"Retry-After": "1"} if status in _RETRY_AFTER else {}
    if 300 <= status < 400:
        headers["Location"] = str(request.rel_url)
    if status >= 300:
        outlet.refused.append((status, reason))
    if status in _NO_BODY:
        return web.Response(status=status, headers=headers)
    body = {"error": reason} if status >= 300 else {}
    return web.json_response(body, status=status, headers=headers)


def _verify(secrets: list[str], text: str, headers: dict[str, str]) -> None:
    """Nothing if one of `secrets` verifies the signature and the timestamp is recent; else
    `_Refusal` 401 with the reason. A malformed header is a bad signature, never an error."""
    missing = [name for name in _HEADERS if not headers[name]]
    if missing:
        raise _Refusal(401, f"missing {', '.join(missing)}")
    reason = "the outlet has no secret"
    for secret in secrets:
        try:
            webhook = Webhook(secret)
        except (ValueError, RuntimeError):  # binascii.Error is a ValueError
            continue
        try:
            webhook.verify(text, headers, json_parse=False)
            return
        except WebhookVerificationError as exc:
            reason = str(exc) or "bad signature"
        except (ValueError, binascii.Error):  # an entry without "v1,", bad base64, bad UTF-8
            reason = "malformed webhook-id or webhook-signature"
    raise _Refusal(401, reason)


def _event(text: str) -> dict[str, Any]:
    """The event the body holds, if it is one; else `_Refusal` 400 saying what is wrong."""
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):
        raise _Refusal(400, "body is not JSON") from None
    if not isinstance(event, dict):
        raise _Refusal(400, "body is not a JSON object")
    if event.get("type") not in EVENT_TYPES:
        raise _Refusal(400, f"type must be one of {', '.join(sorted(EVENT_TYPES))}")
    data = event.get("data")
    if not isinstance(data, dict):
        raise _Refusal(400, "data must be an object")
    for key in ("item_id", "version"):
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Refusal(400, f"data.{key} must be an integer")
    return event


def _answer(received: Received) -> dict[str, str]:
    return {"id": received.article_id, "url": received.url}


def _origin(request: web.Request) -> str:
    """Where the request reached the outlet: the article URLs it hands out are built on it."""
    try:
        return str(request.url.origin())
    except ValueError:  # a Host header that is no host
        return f"{request.scheme}://127.0.0.1"


def _page(html: str, status: int = 200) -> web.Response:
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8",
                        headers=_PAGE_HEADERS)  # fmt: skip


@dataclass(frozen=True)
class RunningOutlets:
    """A sandbox being served at `base_url` (no trailing slash)."""

    sandbox: OutletSandbox
    base_url: str

    def url_for(self, name: str) -> str:
        """The events URL of the outlet `name`: a media channel's `url`."""
        return f"{self.base_url}/outlets/{name}/events"


@contextlib.asynccontextmanager
async def running_outlets(
    sandbox: OutletSandbox | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningOutlets]:
    """Serve `sandbox` (a new, empty one if None) on `host`:`port` (0: a free port) until exit.

    The address is reusable at once: serving the same sandbox again on the same port right
    after is an outlet back from an outage, with all it had received.
    """
    sandbox = sandbox if sandbox is not None else OutletSandbox()
    async with serving(sandbox.app(), host, port) as base_url:
        yield RunningOutlets(sandbox, base_url)
