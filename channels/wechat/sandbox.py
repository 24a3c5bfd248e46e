"""A local stand-in of the WeChat Official Account API (公众号), all state in memory.

Tests, `gongkai serve --sandbox`, `gongkai demo` and the benchmark point the WeChat channel at it
instead of api.weixin.qq.com. It speaks the real protocol, so wechatpy's `WeChatClient` with
`API_BASE_URL = f"{base_url}/cgi-bin/"` works against it unchanged: the same paths, JSON shapes,
limits and error codes (HTTP 200 with `errcode`/`errmsg`, as the real API answers errors).

Served: `cgi-bin/token`, `media/uploadimg`, `material/add_material`, `draft/add|get|delete`,
`freepublish/submit|get|delete|getarticle|batchget` and `message/mass/sendall`; any other
`cgi-bin/` path answers 48001 "api unauthorized". Only the newest token of an account is valid
(fetching one invalidates the previous, as WeChat does) and it expires after 7200 s of `clock`.
A submit consumes its draft; each `freepublish/get` moves the job one step along
`Faults.statuses`; reaching a final status (anything but 1, "publishing") publishes the articles
on success (status 0) and pushes the PUBLISHJOBFINISH event to the account's callback URL.
Mass sends are limited per Beijing day and deduplicated by `clientmsgid` for 24 hours.

Where it is stricter or simpler than WeChat, so that tests catch what WeChat would hide:

- content with an `<img>` whose `src` is not an image this sandbox issued to the account
  (uploadimg or add_material) is refused with 45166; WeChat silently drops such images;
- a missing access_token answers 40001 like an unknown one (WeChat answers 41001);
- deleting an already deleted article answers ok (WeChat answers an error);
- a mass send leaves its draft in place, and publishes no article pages.

`Faults` makes it fail on demand (busy, rate limits, invalid tokens, IP allow-list, slow token,
publish outcomes); they are settable from Python and over HTTP (`/sandbox/faults`). `/sandbox/`
shows in Chinese what each account received; `/s/{article_id}` serves a published article. The
app must be served at the root of its own server: URLs it hands out are built from the request's
host. `calls` records every `cgi-bin/` request, not the pages.

This module holds the handlers. The records, WeChat's limits and checks are `sandbox_records`
(re-exported here), request reading and the event push `sandbox_http`, the markup `sandbox_page`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiohttp import web

from channels.standins import serving
from channels.wechat import sandbox_page
from channels.wechat.sandbox_http import (
    PUSH_TIMEOUT,
    base_url,
    json_body,
    media_bytes,
    push_event,
)
from channels.wechat.sandbox_records import (
    CLIENTMSGID_TTL,
    ERRMSG,
    IMAGE_MAX,
    JPEG,
    MAX_ARTICLES,
    MEDIA_TYPES,
    NEWS_FIELDS,
    PNG,
    PUBLISHING,
    TEXT_FIELDS,
    THUMB_MAX,
    TOKEN_TTL,
    UPLOADIMG_MAX,
    VOICE_MAX,
    Account,
    Article,
    Call,
    Draft,
    Faults,
    Image,
    MassSend,
    Material,
    NewsItem,
    PublishJob,
    WxError,
    check_item,
    check_mass_send,
    checked_faults,
    image_type,
    int_or,
    new_id,
    news_item,
    news_json,
)

__all__ = [
    "CLIENTMSGID_TTL",
    "ERRMSG",
    "IMAGE_MAX",
    "JPEG",
    "MAX_ARTICLES",
    "MEDIA_TYPES",
    "NEWS_FIELDS",
    "PNG",
    "PUBLISHING",
    "PUSH_TIMEOUT",
    "SANDBOX_APPID",
    "SANDBOX_SECRET",
    "TEXT_FIELDS",
    "THUMB_MAX",
    "TOKEN_TTL",
    "UPLOADIMG_MAX",
    "VOICE_MAX",
    "Account",
    "Article",
    "Call",
    "Draft",
    "Faults",
    "Handler",
    "Image",
    "MassSend",
    "Material",
    "NewsItem",
    "PublishJob",
    "RunningSandbox",
    "Sandbox",
    "WxError",
    "running_sandbox",
]

SANDBOX_APPID = "wxsandbox0000000001"
SANDBOX_SECRET = "sandbox-secret"  # noqa: S105 (the sandbox's public default)

Handler = Callable[[Account, web.Request], Awaitable[dict[str, object]]]


class Sandbox:
    """The WeChat API's state; `app()` serves it."""

    def __init__(
        self,
        accounts: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock  # wall-clock seconds: token expiry, Beijing days, the clientmsgid window
        self.faults = Faults()
        self.calls: list[Call] = []
        self._accounts: dict[str, Account] = {}
        self._tokens: dict[str, str] = {}  # every token ever issued -> its appid
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._app: web.Application | None = None
        for appid, secret in (accounts or {SANDBOX_APPID: SANDBOX_SECRET}).items():
            self.add_account(appid, secret)

    def add_account(
        self, appid: str, secret: str, callback_url: str = "", callback_token: str = ""
    ) -> None:
        """Add (or replace) an account; with a callback URL, publish events are pushed to it."""
        self._accounts[appid] = Account(appid, secret, callback_url, callback_token)

    # -- read accessors, for tests and the page -------------------------------------------

    def count(self, endpoint: str | None = None, appid: str | None = None) -> int:
        """Number of calls to `endpoint` ("cgi-bin/draft/add") by `appid`; None matches any."""
        return sum(
            1 for c in self.calls if endpoint in (None, c.endpoint) and appid in (None, c.appid)
        )

    def published(self, appid: str = SANDBOX_APPID) -> list[Article]:
        """Published articles, oldest first, deleted ones included (`deleted` says so)."""
        return list(self._accounts[appid].articles)

    def drafts(self, appid: str = SANDBOX_APPID) -> list[Draft]:
        """Drafts waiting: added, neither submitted nor deleted."""
        return list(self._accounts[appid].drafts.values())

    def mass_sends(self, appid: str = SANDBOX_APPID) -> list[MassSend]:
        """Accepted mass sends, oldest first."""
        return list(self._accounts[appid].mass_sends)

    def images(self, appid: str = SANDBOX_APPID) -> list[Image]:
        """Body images uploaded with `media/uploadimg`."""
        return list(self._accounts[appid].images)

    def thumbs(self, appid: str = SANDBOX_APPID) -> list[Material]:
        """Thumb materials (`add_material?type=thumb`)."""
        return [m for m in self._accounts[appid].materials.values() if m.type == "thumb"]

    def jobs(self, appid: str = SANDBOX_APPID) -> list[PublishJob]:
        """Publish jobs, in submit order."""
        return list(self._accounts[appid].jobs.values())

    # -- faults ----------------------------------------------------------------------------

    def reset_faults(self) -> None:
        """Back to no faults (in place: holders of `faults` see the change)."""
        self.set_faults(asdict(Faults()))

    def set_faults(self, values: Mapping[str, object]) -> Faults:
        """Set the given fault fields (checked; ValueError if wrong), keep the others."""
        new = checked_faults(values)
        for name, value in new.items():
            setattr(self.faults, name, value)
        return self.faults

    # -- the app ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application (built once)."""
        if self._app is None:
            self._app = self._build()
        return self._app

    def _build(self) -> web.Application:
        app = web.Application(client_max_size=IMAGE_MAX + 1_048_576)
        app.cleanup_ctx.append(self._background)
        app.router.add_get("/cgi-bin/token", self._token)
        api: dict[str, Handler] = {
            "media/uploadimg": self._uploadimg,
            "material/add_material": self._add_material,
            "draft/add": self._draft_add,
            "draft/get": self._draft_get,
            "draft/delete": self._draft_delete,
            "freepublish/submit": self._submit,
            "freepublish/get": self._publish_get,
            "freepublish/delete": self._publish_delete,
            "freepublish/getarticle": self._getarticle,
            "freepublish/batchget": self._batchget,
            "message/mass/sendall": self._sendall,
        }
        for path, handler in api.items():
            app.router.add_post(f"/cgi-bin/{path}", self._api(handler))
        app.router.add_route("*", "/cgi-bin/{tail:.*}", self._api(self._unknown))
        app.router.add_get("/sandbox", self._to_overview)
        app.router.add_get("/sandbox/", self._overview)
        app.router.add_get("/sandbox/calls.json", self._calls_json)
        app.router.add_get("/sandbox/faults", self._faults_json)
        app.router.add_post("/sandbox/faults", self._faults_json)
        app.router.add_delete("/sandbox/faults", self._faults_json)
        app.router.add_get("/s/{article_id}", self._article_page)
        app.router.add_get("/mmbiz/{appid}/{name}", self._file)
        return app

    async def _background(self, app: web.Application) -> AsyncIterator[None]:
        """Owns the jobs' timers and event pushes: cancelled when the app stops."""
        yield
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- token and the checks every API call passes --------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        if self.faults.token_delay > 0:
            await asyncio.sleep(self.faults.token_delay)
        query = request.query
        account = self._accounts.get(query.get("appid", ""))
        try:
            if self.faults.ip_blocked:
                raise WxError(40164, ip=request.remote or "")
            if query.get("grant_type") != "client_credential":
                raise WxError(40002)
            if account is None:
                raise WxError(40013)
            if not secrets.compare_digest(query.get("secret", ""), account.secret):
                raise WxError(40125)
        except WxError as exc:
            appid = account.appid if account else None
            return self._answer(request, appid, exc.errcode, exc.payload)
        account.token = secrets.token_urlsafe(96)
        account.token_issued = self.clock()
        self._tokens[account.token] = account.appid
        payload = {"access_token": account.token, "expires_in": TOKEN_TTL}
        return self._answer(request, account.appid, 0, payload)

    def _api(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            appid = self._tokens.get(request.query.get("access_token", ""))
            try:
                account = self._check(request, appid)
                payload = await handler(account, request)
            except WxError as exc:
                return self._answer(request, appid, exc.errcode, exc.payload)
            return self._answer(request, appid, 0, payload)

        return handle

    def _check(self, request: web.Request, appid: str | None) -> Account:
        """The account whose valid token the call carries, or the fault or token error."""
        faults = self.faults
        if faults.ip_blocked:
            raise WxError(40164, ip=request.remote or "")
        account = self._accounts.get(appid or "")
        if faults.invalid_token or account is None:
            raise WxError(40001)
        if request.query["access_token"] != account.token:
            raise WxError(40001)  # an older token: the newest replaced it
        if self.clock() - account.token_issued >= TOKEN_TTL:
            raise WxError(42001)
        if faults.busy > 0:
            faults.busy -= 1
            raise WxError(-1)
        if faults.rate_limited > 0:
            faults.rate_limited -= 1
            raise WxError(45011)
        return account

    def _answer(
        self, request: web.Request, appid: str | None, errcode: int, payload: Mapping[str, object]
    ) -> web.Response:
        self.calls.append(Call(request.path.lstrip("/"), appid, errcode))
        return web.json_response(payload, dumps=partial(json.dumps, ensure_ascii=False))

    async def _unknown(self, account: Account, request: web.Request) -> dict[str, object]:
        raise WxError(48001)

    # -- uploads ---------------------------------------------------------------------------

    async def _uploadimg(self, account: Account, request: web.Request) -> dict[str, object]:
        data = await media_bytes(request)
        kind = image_type(data)
        if kind is None:
            raise WxError(40005)
        if len(data) >= UPLOADIMG_MAX:
            raise WxError(40009)
        url = self._serve(account, request, kind, data)
        account.images.append(Image(url, kind, data))
        return {"url": url}

    async def _add_material(self, account: Account, request: web.Request) -> dict[str, object]:
        media_type = request.query.get("type", "")
        if media_type not in MEDIA_TYPES:
            raise WxError(40004)
        data = await media_bytes(request)
        kind, url = "application/octet-stream", ""
        if media_type in ("image", "thumb"):
            kind = image_type(data) or ""
            if kind not in (
                ("image/jpeg",) if media_type == "thumb" else ("image/jpeg", "image/png")
            ):
                raise WxError(40005)
        limit = {"thumb": THUMB_MAX, "voice": VOICE_MAX}.get(media_type, IMAGE_MAX)
        if len(data) > limit:
            raise WxError(40009)
        if media_type in ("image", "thumb"):
            url = self._serve(account, request, kind, data)
        media_id = new_id()
        account.materials[media_id] = Material(media_id, media_type, url, kind, data)
        return {"media_id": media_id, "url": url} if url else {"media_id": media_id}

    def _serve(self, account: Account, request: web.Request, kind: str, data: bytes) -> str:
        name = f"{next(self._ids)}.{'png' if kind == 'image/png' else 'jpg'}"
        account.files[name] = (kind, data)
        url = f"{base_url(request)}/mmbiz/{account.appid}/{name}"
        account.image_urls.add(url)
        return url

    # -- drafts ----------------------------------------------------------------------------

    async def _draft_add(self, account: Account, request: web.Request) -> dict[str, object]:
        articles = (await json_body(request)).get("articles")
        if not isinstance(articles, list) or not 1 <= len(articles) <= MAX_ARTICLES:
            raise WxError(45008)
        items = tuple(check_item(account, news_item(raw)) for raw in articles)
        media_id = new_id()
        account.drafts[media_id] = Draft(media_id, items, self._now())
        return {"media_id": media_id}

    async def _draft_get(self, account: Account, request: web.Request) -> dict[str, object]:
        draft = account.drafts.get(str((await json_body(request)).get("media_id")))
        if draft is None:
            raise WxError(40007)
        return {"news_item": [{**asdict(item), "url": ""} for item in draft.articles]}

    async def _draft_delete(self, account: Account, request: web.Request) -> dict[str, object]:
        if account.drafts.pop(str((await json_body(request)).get("media_id")), None) is None:
            raise WxError(40007)
        return {"errcode": 0, "errmsg": "ok"}

    # -- publishing ------------------------------------------------------------------------

    async def _submit(self, account: Account, request: web.Request) -> dict[str, object]:
        draft = account.drafts.pop(str((await json_body(request)).get("media_id")), None)
        if draft is None:
            raise WxError(40007)  # unknown, deleted, or already submitted: a submit consumes it
        statuses = list(self.faults.statuses) or [0]
        job = PublishJob(
            publish_id=str(2_247_483_647 + next(self._ids)),
            articles=draft.articles,
            statuses=statuses,
            base_url=base_url(request),
            status=statuses[0],
        )
        account.jobs[job.publish_id] = job
        delay = self.faults.push_after
        if delay is not None:
            job.step = len(statuses)  # gets no longer advance it: the timer decides
            self._spawn(self._finish_later(account, job, delay))
        msg_data_id = 2_247_483_647 + next(self._ids)
        return {"errcode": 0, "errmsg": "ok", "publish_id": job.publish_id,
                "msg_data_id": msg_data_id}  # fmt: skip

    async def _finish_later(self, account: Account, job: PublishJob, delay: float) -> None:
        await asyncio.sleep(delay)
        self._settle(account, job, job.statuses[-1])

    async def _publish_get(self, account: Account, request: web.Request) -> dict[str, object]:
        job = account.jobs.get(str((await json_body(request)).get("publish_id")))
        if job is None:
            raise WxError(40007)
        if job.step < len(job.statuses):
            job.step += 1
            self._settle(account, job, job.statuses[job.step - 1])
        elif not job.final and job.status != PUBLISHING:
            self._settle(account, job, job.status)  # a timed job whose first status is final
        payload: dict[str, object] = {"publish_id": job.publish_id,
                                      "publish_status": job.status}  # fmt: skip
        if job.status == 0:
            payload["article_id"] = job.article_id
            items = [{"idx": a.idx, "article_url": a.url} for a in self._news(account, job)]
            payload["article_detail"] = {"count": len(items), "item": items}
        failed = job.status not in (0, PUBLISHING)
        payload["fail_idx"] = list(range(1, len(job.articles) + 1)) if failed else []
        return payload

    def _settle(self, account: Account, job: PublishJob, status: int) -> None:
        """Move the job to `status`; the first final status publishes (on 0) and pushes."""
        if job.final:
            return
        job.status = status
        if status == PUBLISHING:
            return
        job.final = True
        if status == 0:
            job.article_id = secrets.token_urlsafe(24)
            for idx, item in enumerate(job.articles, start=1):
                url = f"{job.base_url}/s/{job.article_id}?idx={idx}"
                article = Article(**asdict(item), article_id=job.article_id, idx=idx, url=url,
                                  published_at=self._now())  # fmt: skip
                account.articles.append(article)
        if account.callback_url:
            urls = [a.url for a in self._news(account, job)]
            self._spawn(push_event(account, job, urls, self.clock))

    def _news(self, account: Account, job: PublishJob) -> list[Article]:
        return [a for a in account.articles if a.article_id == job.article_id]

    async def _publish_delete(self, account: Account, request: web.Request) -> dict[str, object]:
        body = await json_body(request)
        index = int_or(body.get("index"), 0)  # 0: every article of the publish
        articles = [
            a
            for a in account.articles
            if a.article_id == body.get("article_id") and index in (0, a.idx)
        ]
        if not articles:
            raise WxError(53600)
        for article in articles:
            article.deleted = True  # again on an already deleted one: still ok, see above
        return {"errcode": 0, "errmsg": "ok"}

    async def _getarticle(self, account: Account, request: web.Request) -> dict[str, object]:
        article_id = (await json_body(request)).get("article_id")
        items = [news_json(a, True) for a in account.articles if a.article_id == article_id]
        if not items:
            raise WxError(53600)
        return {"news_item": items}

    async def _batchget(self, account: Account, request: web.Request) -> dict[str, object]:
        body = await json_body(request)
        offset, count = int_or(body.get("offset"), 0), int_or(body.get("count"), 20)
        with_content = not int_or(body.get("no_content"), 0)
        by_id: dict[str, list[Article]] = {}
        for article in reversed(account.articles):  # newest first
            by_id.setdefault(article.article_id, []).append(article)
        page = list(by_id.items())[max(offset, 0) : max(offset, 0) + min(max(count, 1), 20)]
        items = [
            {
                "article_id": article_id,
                "content": {"news_item": [news_json(a, with_content) for a in reversed(news)]},
                "update_time": int(news[0].published_at.timestamp()),
            }
            for article_id, news in page
        ]
        return {"total_count": len(by_id), "item_count": len(items), "item": items}

    # -- mass sends ------------------------------------------------------------------------

    async def _sendall(self, account: Account, request: web.Request) -> dict[str, object]:
        body = await json_body(request)
        if body.get("msgtype") != "mpnews":
            raise WxError(40008)
        mpnews = body.get("mpnews")
        draft = account.drafts.get(str(mpnews.get("media_id") if isinstance(mpnews, dict) else ""))
        if draft is None:
            raise WxError(40007)
        clientmsgid = body.get("clientmsgid")
        clientmsgid = None if clientmsgid in (None, "") else str(clientmsgid)
        now = self._now()
        check_mass_send(account, clientmsgid, now, self.faults.mass_quota)
        titles = tuple(item.title for item in draft.articles)
        msg_id, msg_data_id = 1_000_000_000 + next(self._ids), 2_247_483_647 + next(self._ids)
        sent = MassSend(msg_id, msg_data_id, draft.media_id, clientmsgid, titles, now)
        account.mass_sends.append(sent)
        return {"errcode": 0, "errmsg": "send job submission success", "msg_id": msg_id,
                "msg_data_id": msg_data_id}  # fmt: skip

    # -- pages -----------------------------------------------------------------------------

    async def _to_overview(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/sandbox/")

    async def _overview(self, request: web.Request) -> web.Response:
        html = sandbox_page.overview(list(self._accounts.values()), self.calls[-50:][::-1],
                                     asdict(self.faults))  # fmt: skip
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    async def _calls_json(self, request: web.Request) -> web.Response:
        counts = Counter(c.endpoint for c in self.calls)
        return web.json_response({"calls": [asdict(c) for c in self.calls], "counts": counts})

    async def _faults_json(self, request: web.Request) -> web.Response:
        if request.method == "DELETE":
            self.reset_faults()
        elif request.method == "POST":
            try:
                values = await request.json()
                if not isinstance(values, dict):
                    raise ValueError("a JSON object of fault fields")
                self.set_faults(values)
            except ValueError as exc:  # json.JSONDecodeError is one
                return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(asdict(self.faults))

    async def _article_page(self, request: web.Request) -> web.Response:
        article_id, idx = request.match_info["article_id"], request.query.get("idx", "1")
        found = [
            a
            for account in self._accounts.values()
            for a in account.articles
            if a.article_id == article_id and str(a.idx) == idx
        ]
        if not found or found[0].deleted:
            text = "该内容已被发布者删除" if found else "参数错误"
            html, status = sandbox_page.notice(text), 404
        else:
            html, status = sandbox_page.article(found[0]), 200
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    async def _file(self, request: web.Request) -> web.Response:
        account = self._accounts.get(request.match_info["appid"])
        found = account and account.files.get(request.match_info["name"])
        if not found:
            raise web.HTTPNotFound()
        return web.Response(body=found[1], content_type=found[0])

    # -- helpers ---------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox being served: point the channel at `base_url` (no trailing slash)."""

    sandbox: Sandbox
    base_url: str


@contextlib.asynccontextmanager
async def running_sandbox(
    sandbox: Sandbox | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSandbox]:
    """Serve `sandbox` (a new one if None) on `host`:`port` (0: a free port) until exit."""
    sandbox = sandbox or Sandbox()
    async with serving(sandbox.app(), host, port) as base_url:
        yield RunningSandbox(sandbox, base_url)
