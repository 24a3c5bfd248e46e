"""The WeChat sandbox speaks WeChat's protocol: driven by wechatpy's real client and by raw HTTP.

wechatpy is synchronous, so its calls run in a thread, each bounded by `call`. Its token URL is
hard-coded to the real host, so tokens are fetched here and handed to the client: every request
goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import io
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from wechatpy import WeChatClient
from wechatpy.exceptions import InvalidSignatureException, WeChatClientException
from wechatpy.utils import check_signature

from channels.base import SHANGHAI
from channels.wechat.sandbox import (
    SANDBOX_APPID,
    SANDBOX_SECRET,
    THUMB_MAX,
    UPLOADIMG_MAX,
    Call,
    RunningSandbox,
    Sandbox,
    running_sandbox,
)

T = TypeVar("T")
TIMEOUT = 10.0  # seconds any one step of a test may take
JPEG = b"\xff\xd8\xff\xe0"
PNG = b"\x89PNG\r\n\x1a\n"
OTHER_APPID, OTHER_SECRET = "wxsandbox0000000002", "other-secret"
CALLBACK_TOKEN = "callback-token"


def jpeg(size: int = 1000) -> bytes:
    """Bytes of `size` that pass for a JPEG (the sandbox looks at the signature only)."""
    return JPEG + b"\0" * (size - len(JPEG))


def upload(data: bytes, name: str = "image.jpg") -> io.BytesIO:
    stream = io.BytesIO(data)
    stream.name = name
    return stream


async def call(request: Callable[[], T]) -> T:
    """A wechatpy call in a thread, bounded."""
    return await asyncio.wait_for(asyncio.to_thread(request), TIMEOUT)


async def refused(request: Callable[[], object]) -> WeChatClientException:
    """The error wechatpy raised for `request`."""
    with pytest.raises(WeChatClientException) as info:
        await call(request)
    return info.value


def client(base_url: str, token: str, appid: str = SANDBOX_APPID) -> WeChatClient:
    wx = WeChatClient(appid, "unused", access_token=token, timeout=TIMEOUT, auto_retry=False)
    wx.API_BASE_URL = f"{base_url}/cgi-bin/"
    return wx


@pytest.fixture(autouse=True)
def _local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy between requests and 127.0.0.1."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@dataclass
class Clock:
    """A settable wall clock, starting at noon Beijing time."""

    now: float = datetime(2026, 11, 24, 12, tzinfo=SHANGHAI).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(clock: Clock) -> Sandbox:
    sandbox = Sandbox(clock=clock)
    sandbox.add_account(OTHER_APPID, OTHER_SECRET)
    return sandbox


@pytest.fixture
async def running(sandbox: Sandbox) -> AsyncIterator[RunningSandbox]:
    async with running_sandbox(sandbox) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
        yield session


@dataclass
class Api:
    """Raw HTTP to the running sandbox."""

    base_url: str
    http: aiohttp.ClientSession

    async def token_answer(self, **params: str) -> dict[str, Any]:
        query = {
            "grant_type": "client_credential",
            "appid": SANDBOX_APPID,
            "secret": SANDBOX_SECRET,
            **params,
        }
        async with self.http.get(f"{self.base_url}/cgi-bin/token", params=query) as response:
            assert response.status == 200
            return dict(await response.json())

    async def token(self, appid: str = SANDBOX_APPID, secret: str = SANDBOX_SECRET) -> str:
        return str((await self.token_answer(appid=appid, secret=secret))["access_token"])

    async def client(
        self, appid: str = SANDBOX_APPID, secret: str = SANDBOX_SECRET
    ) -> WeChatClient:
        return client(self.base_url, await self.token(appid, secret), appid)

    async def post(self, endpoint: str, token: str, body: object) -> dict[str, Any]:
        url = f"{self.base_url}/cgi-bin/{endpoint}"
        async with self.http.post(url, params={"access_token": token}, json=body) as response:
            return dict(await response.json())

    async def get(self, path: str) -> tuple[int, str, str]:
        """Status, content type and text of a page."""
        async with self.http.get(self.base_url + path) as response:
            return response.status, response.content_type, await response.text()


@pytest.fixture
def api(running: RunningSandbox, http: aiohttp.ClientSession) -> Api:
    return Api(running.base_url, http)


@pytest.fixture
async def wx(api: Api) -> WeChatClient:
    return await api.client()


async def thumb(wx: WeChatClient) -> str:
    answer = await call(lambda: wx.material.add("thumb", upload(jpeg())))
    return str(answer["media_id"])


def article(cover: str, **overrides: object) -> dict[str, Any]:
    """An article of a draft: realistic values, `cover` its thumb, any field overridden."""
    return {
        "title": "某某工程中标候选人公示",
        "author": "示范市交易中心",
        "digest": "评标委员会推荐的中标候选人",
        "content": "<p>公示期三日。</p>",
        "content_source_url": "https://gk.example.gov.cn/items/7",
        "thumb_media_id": cover,
        **overrides,
    }


async def draft(wx: WeChatClient, **overrides: object) -> str:
    item = article(await thumb(wx), **overrides)
    return str((await call(lambda: wx.draft.add([item])))["media_id"])


async def publish(wx: WeChatClient, **overrides: object) -> dict[str, Any]:
    """Draft, submit and poll until published; freepublish/get's last answer."""
    media_id = await draft(wx, **overrides)
    answer: dict[str, Any] = {}
    publish_id = (await call(lambda: wx.freepublish.submit(media_id)))["publish_id"]
    for _ in range(2):  # the default sequence: publishing, then published
        answer = await call(lambda: wx.freepublish.get(publish_id))
    assert answer["publish_status"] == 0
    return answer


# -- tokens ---------------------------------------------------------------------------------


async def test_running_sandbox_serves_on_a_free_local_port(running: RunningSandbox) -> None:
    assert running.base_url.startswith("http://127.0.0.1:")
    assert not running.base_url.endswith("/")
    assert running.base_url.rsplit(":", 1)[1] != "0"


async def test_a_new_token_invalidates_the_previous_one(api: Api, sandbox: Sandbox) -> None:
    first = await api.token_answer()
    assert first["expires_in"] == 7200
    second = await api.token()
    old, new = client(api.base_url, first["access_token"]), client(api.base_url, second)

    assert (await refused(lambda: old.draft.get("nothing"))).errcode == 40001
    assert (await refused(lambda: new.draft.get("nothing"))).errcode == 40007  # token accepted
    assert sandbox.calls[-2:] == [
        Call("cgi-bin/draft/get", SANDBOX_APPID, 40001),
        Call("cgi-bin/draft/get", SANDBOX_APPID, 40007),
    ]


@pytest.mark.parametrize(
    ("params", "errcode", "appid"),
    [
        ({"secret": "wrong"}, 40125, SANDBOX_APPID),
        ({"appid": "wxunknown"}, 40013, None),
        ({"grant_type": "password"}, 40002, SANDBOX_APPID),
    ],
)
async def test_token_refusals(
    api: Api, sandbox: Sandbox, params: dict[str, str], errcode: int, appid: str | None
) -> None:
    answer = await api.token_answer(**params)
    assert answer["errcode"] == errcode and "access_token" not in answer
    assert sandbox.calls == [Call("cgi-bin/token", appid, errcode)]


async def test_a_missing_or_unknown_token_is_refused(api: Api) -> None:
    assert (await api.post("draft/get", "", {"media_id": "x"}))["errcode"] == 40001
    assert (await api.post("draft/get", "forged", {"media_id": "x"}))["errcode"] == 40001


async def test_a_token_expires_after_two_hours(api: Api, clock: Clock) -> None:
    wx = await api.client()
    clock.now += 7199
    assert (await refused(lambda: wx.draft.get("x"))).errcode == 40007
    clock.now += 1
    error = await refused(lambda: wx.draft.get("x"))
    assert (error.errcode, error.errmsg) == (42001, "access_token expired")


async def test_a_token_of_one_account_reaches_only_its_own_drafts(api: Api) -> None:
    wx, other = await api.client(), await api.client(OTHER_APPID, OTHER_SECRET)
    media_id = await draft(wx)
    assert (await refused(lambda: other.draft.get(media_id))).errcode == 40007


# -- uploads --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "errcode"),
    [
        (b"", 41005),
        (b"GIF89a" + b"\0" * 100, 40005),
        (jpeg(UPLOADIMG_MAX), 40009),
    ],
    ids=["empty", "gif", "1MB"],
)
async def test_uploadimg_refusals(wx: WeChatClient, data: bytes, errcode: int) -> None:
    assert (await refused(lambda: wx.media.upload_image(upload(data)))).errcode == errcode


async def test_uploadimg_serves_what_it_stored(
    wx: WeChatClient, api: Api, sandbox: Sandbox
) -> None:
    png = PNG + b"picture"
    png_url = await call(lambda: wx.media.upload_image(upload(png, "a.png")))
    jpeg_url = await call(lambda: wx.media.upload_image(upload(jpeg(UPLOADIMG_MAX - 1))))

    assert png_url.startswith(f"{api.base_url}/mmbiz/{SANDBOX_APPID}/")
    assert png_url.endswith(".png") and jpeg_url.endswith(".jpg")
    async with api.http.get(png_url) as response:
        assert response.status == 200
        assert response.content_type == "image/png"
        assert await response.read() == png
    assert [i.url for i in sandbox.images()] == [png_url, jpeg_url]
    assert sandbox.count("cgi-bin/media/uploadimg", SANDBOX_APPID) == 2


@pytest.mark.parametrize(
    ("media_type", "data", "errcode"),
    [
        ("thumb", jpeg(THUMB_MAX), 0),
        ("thumb", jpeg(THUMB_MAX + 1), 40009),
        ("thumb", PNG + b"\0" * 100, 40005),
        ("thumb", b"", 41005),
        ("image", PNG + b"\0" * 100, 0),
        ("sticker", jpeg(), 40004),
    ],
    ids=["64KB", "over-64KB", "png-thumb", "empty", "png-image", "bad-type"],
)
async def test_add_material_limits(
    wx: WeChatClient, sandbox: Sandbox, media_type: str, data: bytes, errcode: int
) -> None:
    if errcode:
        error = await refused(lambda: wx.material.add(media_type, upload(data)))
        assert error.errcode == errcode
        assert not sandbox.thumbs()
        return
    answer = await call(lambda: wx.material.add(media_type, upload(data)))
    assert answer["media_id"] and answer["url"]
    thumbs = sandbox.thumbs()
    assert [t.media_id for t in thumbs] == ([answer["media_id"]] if media_type == "thumb" else [])


# -- drafts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"title": ""}, 45003),
        ({"title": "题" * 33}, 45003),
        ({"author": "作" * 17}, 45110),
        ({"digest": "摘" * 129}, 45004),
        ({"content": ""}, 45002),
        ({"content": "字" * 20_000}, 45002),
        ({"thumb_media_id": "no-such-thumb"}, 40007),
        ({"content": '<p><img src="https://example.com/a.jpg"></p>'}, 45166),
        ({"content": "<p><img></p>"}, 45166),
        ({"content_source_url": "https://gk.example.gov.cn/" + "a" * 1000}, 45005),
        ({"title": "题" * 33, "author": "作" * 17}, 45003),  # the first limit in WeChat's order
    ],
    ids=[
        "no-title",
        "long-title",
        "author",
        "digest",
        "no-content",
        "long-content",
        "thumb",
        "external-image",
        "image-without-src",
        "source-url",
        "order",
    ],
)
async def test_draft_limits(
    wx: WeChatClient, sandbox: Sandbox, overrides: dict[str, str], errcode: int
) -> None:
    item = article(await thumb(wx), **overrides)
    assert (await refused(lambda: wx.draft.add([item]))).errcode == errcode
    assert not sandbox.drafts()


async def test_a_draft_at_every_limit_is_accepted(wx: WeChatClient, sandbox: Sandbox) -> None:
    image = await call(lambda: wx.media.upload_image(upload(jpeg())))
    content = f'<p><img src="{image}"></p>'
    limits = {
        "title": "题" * 32,
        "author": "作" * 16,
        "digest": "摘" * 128,
        "content": content + "字" * (19_999 - len(content)),
    }
    media_id = await draft(wx, **limits)
    assert [d.media_id for d in sandbox.drafts()] == [media_id]
    assert sandbox.drafts()[0].articles[0].title == "题" * 32


@pytest.mark.parametrize("count", [0, 9])
async def test_a_draft_has_one_to_eight_articles(wx: WeChatClient, count: int) -> None:
    items = [article(await thumb(wx))] * count
    assert (await refused(lambda: wx.draft.add(items))).errcode == 45008


async def test_an_image_of_another_account_is_refused(api: Api) -> None:
    wx, other = await api.client(), await api.client(OTHER_APPID, OTHER_SECRET)
    theirs = await call(lambda: other.media.upload_image(upload(jpeg())))
    item = article(await thumb(wx), content=f'<img src="{theirs}">')
    assert (await refused(lambda: wx.draft.add([item]))).errcode == 45166


async def test_draft_get_and_delete(wx: WeChatClient, sandbox: Sandbox) -> None:
    media_id = await draft(wx, title="草稿标题")
    news = (await call(lambda: wx.draft.get(media_id)))["news_item"]
    assert [(n["title"], n["url"]) for n in news] == [("草稿标题", "")]

    assert await call(lambda: wx.draft.delete(media_id)) == {"errcode": 0, "errmsg": "ok"}
    assert (await refused(lambda: wx.draft.get(media_id))).errcode == 40007
    assert (await refused(lambda: wx.draft.delete(media_id))).errcode == 40007
    assert not sandbox.drafts()


# -- publishing -----------------------------------------------------------------------------


async def test_submit_then_get_publishes(wx: WeChatClient, api: Api, sandbox: Sandbox) -> None:
    media_id = await draft(wx)
    submitted = await call(lambda: wx.freepublish.submit(media_id))
    publish_id = submitted["publish_id"]
    assert publish_id.isdigit() and isinstance(submitted["msg_data_id"], int)
    assert not sandbox.drafts()  # a submit consumes its draft
    assert (await refused(lambda: wx.freepublish.submit(media_id))).errcode == 40007

    first = await call(lambda: wx.freepublish.get(publish_id))
    assert first["publish_status"] == 1 and "article_id" not in first
    assert not sandbox.published()
    second = await call(lambda: wx.freepublish.get(publish_id))
    assert second["publish_status"] == 0 and second["fail_idx"] == []
    article_id = second["article_id"]
    url = f"{api.base_url}/s/{article_id}?idx=1"
    assert second["article_detail"] == {"count": 1, "item": [{"idx": 1, "article_url": url}]}
    assert (await call(lambda: wx.freepublish.get(publish_id)))["publish_status"] == 0

    [published] = sandbox.published()
    assert (published.article_id, published.url, published.deleted) == (article_id, url, False)
    status, content_type, page = await api.get(f"/s/{article_id}?idx=1")
    assert status == 200 and content_type == "text/html"
    assert "某某工程中标候选人公示" in page and "<p>公示期三日。</p>" in page
    assert 'href="https://gk.example.gov.cn/items/7">阅读原文' in page
    assert '<meta charset="utf-8">' in page and 'lang="zh-CN"' in page

    news = (await call(lambda: wx.freepublish.getarticle(article_id)))["news_item"]
    assert [(n["title"], n["url"], n["is_deleted"]) for n in news] == [
        ("某某工程中标候选人公示", url, False)
    ]
    listed = await call(lambda: wx.freepublish.batchget(0, 20))
    assert (listed["total_count"], listed["item_count"]) == (1, 1)
    assert listed["item"][0]["article_id"] == article_id
    assert listed["item"][0]["content"]["news_item"][0]["content"] == "<p>公示期三日。</p>"


async def test_a_failed_publish_reports_fail_idx(wx: WeChatClient, sandbox: Sandbox) -> None:
    sandbox.faults.statuses = [1, 4]
    media_id = await draft(wx)
    publish_id = (await call(lambda: wx.freepublish.submit(media_id)))["publish_id"]
    answers = [await call(lambda: wx.freepublish.get(publish_id)) for _ in range(3)]
    assert [a["publish_status"] for a in answers] == [1, 4, 4]
    assert answers[1]["fail_idx"] == [1] and "article_id" not in answers[1]
    assert not sandbox.published()
    assert (await refused(lambda: wx.freepublish.get("999"))).errcode == 40007


async def test_a_deleted_article_is_gone(wx: WeChatClient, api: Api, sandbox: Sandbox) -> None:
    article_id = (await publish(wx))["article_id"]
    ok = {"errcode": 0, "errmsg": "ok"}
    assert await call(lambda: wx.freepublish.delete(article_id, 0)) == ok

    status, _, page = await api.get(f"/s/{article_id}?idx=1")
    assert status == 404 and "该内容已被发布者删除" in page
    assert sandbox.published()[0].deleted
    news = (await call(lambda: wx.freepublish.getarticle(article_id)))["news_item"]
    assert news[0]["is_deleted"] is True
    assert await call(lambda: wx.freepublish.delete(article_id, 0)) == ok  # again: still ok
    assert (await refused(lambda: wx.freepublish.delete("no-such-article", 0))).errcode == 53600


# -- mass sends -----------------------------------------------------------------------------


async def test_mass_send_quota_and_clientmsgid(
    wx: WeChatClient, api: Api, sandbox: Sandbox, clock: Clock
) -> None:
    media_id = await draft(wx, title="群发标题")

    def send(clientmsgid: str, to: str = media_id, by: WeChatClient = wx) -> dict[str, Any]:
        return dict(by.message.send_mass_article(to, is_to_all=True, client_msg_id=clientmsgid))

    first = await call(lambda: send("item-7-v1"))
    assert first["errmsg"] == "send job submission success" and isinstance(first["msg_id"], int)

    again = await refused(lambda: send("item-7-v1"))
    assert again.errcode == 45065
    assert again.response.json()["msg_id"] == first["msg_id"]  # the earlier send's
    assert (await refused(lambda: send("item-8-v1"))).errcode == 45028  # one a Beijing day
    assert (await refused(lambda: send("item-9-v1", "no-such-draft"))).errcode == 40007
    text = await refused(lambda: wx.message.send_mass_text("文字", is_to_all=True))
    assert text.errcode == 40008

    clock.now += 12 * 3600  # midnight in Beijing: a new day's quota (and a new token)
    fresh = await api.client()
    second = await call(lambda: send("item-8-v1", by=fresh))
    assert [(s.clientmsgid, s.msg_id, s.titles) for s in sandbox.mass_sends()] == [
        ("item-7-v1", first["msg_id"], ("群发标题",)),
        ("item-8-v1", second["msg_id"], ("群发标题",)),
    ]


async def test_a_mass_quota_can_be_raised(wx: WeChatClient, sandbox: Sandbox) -> None:
    sandbox.faults.mass_quota = 2
    media_id = await draft(wx)
    send = wx.message.send_mass_article
    for clientmsgid in ("a", "b"):
        await call(partial(send, media_id, is_to_all=True, client_msg_id=clientmsgid))
    assert len(sandbox.mass_sends()) == 2


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "errcodes"),
    [
        ({"busy": 2}, [-1, -1, 40007]),
        ({"rate_limited": 1}, [45011, 40007, 40007]),
        ({"invalid_token": True}, [40001, 40001, 40001]),
        ({"ip_blocked": True}, [40164, 40164, 40164]),
    ],
)
async def test_api_faults(
    wx: WeChatClient, sandbox: Sandbox, faults: dict[str, object], errcodes: list[int]
) -> None:
    sandbox.set_faults(faults)
    seen = [(await refused(lambda: wx.draft.get("x"))).errcode for _ in errcodes]
    assert seen == errcodes  # 40007: the fault is spent, the call reached the draft box
    sandbox.reset_faults()
    assert (await refused(lambda: wx.draft.get("x"))).errcode == 40007


async def test_an_ip_block_refuses_tokens_too(api: Api, sandbox: Sandbox) -> None:
    sandbox.faults.ip_blocked = True
    answer = await api.token_answer()
    assert answer["errcode"] == 40164
    assert answer["errmsg"] == "invalid ip 127.0.0.1, not in whitelist"


async def test_token_delay_holds_the_token_answer(api: Api, sandbox: Sandbox) -> None:
    sandbox.faults.token_delay = 30
    with pytest.raises(TimeoutError):
        async with api.http.get(
            f"{api.base_url}/cgi-bin/token",
            params={
                "grant_type": "client_credential",
                "appid": SANDBOX_APPID,
                "secret": SANDBOX_SECRET,
            },
            timeout=aiohttp.ClientTimeout(total=0.2),
        ):
            pass


async def test_faults_and_calls_over_http(api: Api, sandbox: Sandbox) -> None:
    url = f"{api.base_url}/sandbox/faults"
    async with api.http.post(url, json={"busy": 1, "statuses": [1, 4], "push_after": 0}) as r:
        assert r.status == 200
        assert (await r.json())["statuses"] == [1, 4]
    assert (sandbox.faults.busy, sandbox.faults.push_after) == (1, 0)
    for wrong in ({"busy": "many"}, {"nonsense": 1}, {"statuses": [7]}, [1]):
        async with api.http.post(url, json=wrong) as r:
            assert r.status == 400
    async with api.http.delete(url) as r:
        assert (await r.json())["busy"] == 0
    assert sandbox.faults.statuses == [1, 0] and sandbox.faults.busy == 0

    token = await api.token()
    await api.post("draft/get", token, {"media_id": "x"})
    async with api.http.get(f"{api.base_url}/sandbox/calls.json") as r:
        calls = await r.json()
    assert calls["counts"] == {"cgi-bin/token": 1, "cgi-bin/draft/get": 1}
    assert calls["calls"][-1] == {
        "endpoint": "cgi-bin/draft/get",
        "appid": SANDBOX_APPID,
        "errcode": 40007,
    }


async def test_an_unknown_api_is_unauthorized(wx: WeChatClient, sandbox: Sandbox) -> None:
    assert (await refused(lambda: wx.draft.count())).errcode == 48001
    assert sandbox.count("cgi-bin/draft/count") == 1


async def test_a_body_that_is_not_json_is_a_format_error(api: Api) -> None:
    url = f"{api.base_url}/cgi-bin/draft/add"
    params = {"access_token": await api.token()}
    async with api.http.post(url, params=params, data=b"{not json") as response:
        assert (await response.json())["errcode"] == 47001


# -- event push -----------------------------------------------------------------------------


@dataclass
class Receiver:
    """A callback URL that checks each push's signature with wechatpy and keeps its XML."""

    url: str = ""
    events: list[ET.Element] = field(default_factory=list)
    signed: list[bool] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            check_signature(CALLBACK_TOKEN, q["signature"], q["timestamp"], q["nonce"])
            self.signed.append(True)
        except InvalidSignatureException:
            self.signed.append(False)
        self.events.append(ET.fromstring(await request.read()))  # noqa: S314 (our own XML)
        self.arrived.set()
        return web.Response(text="success")

    async def next_event(self) -> ET.Element:
        await asyncio.wait_for(self.arrived.wait(), TIMEOUT)
        self.arrived.clear()
        return self.events[-1]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/wechat/callback", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/wechat/callback"
        yield receiver
    finally:
        await runner.cleanup()


@pytest.fixture
async def pushing(api: Api, sandbox: Sandbox, receiver: Receiver) -> WeChatClient:
    """A client of an account whose events go to `receiver`."""
    sandbox.add_account("wxpush000000000001", "push-secret", receiver.url, CALLBACK_TOKEN)
    return await api.client("wxpush000000000001", "push-secret")


def info(event: ET.Element) -> Iterator[tuple[str, str]]:
    publish = event.find("PublishEventInfo")
    assert publish is not None
    for element in publish.iter():
        if element.text and element.text.strip():
            yield element.tag, element.text


async def test_a_publish_pushes_a_signed_event(pushing: WeChatClient, receiver: Receiver) -> None:
    answer = await publish(pushing)

    event = await receiver.next_event()
    assert receiver.signed == [True]
    assert event.findtext("MsgType") == "event" and event.findtext("Event") == "PUBLISHJOBFINISH"
    assert (event.findtext("ToUserName") or "").startswith("gh_")
    assert dict(info(event)) == {
        "publish_id": answer["publish_id"],
        "publish_status": "0",
        "article_id": answer["article_id"],
        "count": "1",
        "idx": "1",
        "article_url": answer["article_detail"]["item"][0]["article_url"],
    }


async def test_push_after_finishes_a_job_without_polling(
    pushing: WeChatClient, sandbox: Sandbox, receiver: Receiver
) -> None:
    sandbox.set_faults({"statuses": [1, 4], "push_after": 0.0})
    media_id = await draft(pushing)
    publish_id = (await call(lambda: pushing.freepublish.submit(media_id)))["publish_id"]

    event = await receiver.next_event()
    assert dict(info(event)) == {"publish_id": publish_id, "publish_status": "4", "fail_idx": "1"}
    answer = await call(lambda: pushing.freepublish.get(publish_id))
    assert (answer["publish_status"], answer["fail_idx"]) == (4, [1])
    assert receiver.signed == [True]  # one push per job


async def test_a_failing_callback_does_not_fail_the_publish(api: Api, sandbox: Sandbox) -> None:
    sandbox.add_account("wxpush000000000002", "s", f"{api.base_url}/nowhere", CALLBACK_TOKEN)
    wx = await api.client("wxpush000000000002", "s")
    await publish(wx)
    assert [a.title for a in sandbox.published("wxpush000000000002")] == ["某某工程中标候选人公示"]


# -- pages ----------------------------------------------------------------------------------


async def test_the_overview_lists_what_was_published_escaped(wx: WeChatClient, api: Api) -> None:
    await publish(wx, title="<b>粗体</b>公告")
    media_id = await draft(wx, title="待发草稿")
    send = wx.message.send_mass_article
    await call(partial(send, media_id, is_to_all=True, client_msg_id="notice-7"))

    status, content_type, page = await api.get("/sandbox/")
    assert status == 200 and content_type == "text/html"
    assert "<title>微信公众号沙箱</title>" in page and 'lang="zh-CN"' in page
    assert "&lt;b&gt;粗体&lt;/b&gt;公告" in page and "<b>粗体" not in page
    assert "待发草稿" in page and "notice-7" in page and "cgi-bin/freepublish/get" in page
    article_id = (await call(lambda: wx.freepublish.batchget(0, 1)))["item"][0]["article_id"]
    _, _, article_page = await api.get(f"/s/{article_id}?idx=1")
    assert "<title>&lt;b&gt;粗体&lt;/b&gt;公告</title>" in article_page


async def test_an_unknown_article_page_is_404(api: Api) -> None:
    assert (await api.get("/s/nothing?idx=1"))[0] == 404
