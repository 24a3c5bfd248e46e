"""What the WeChat sandbox's tests share: wechatpy clients bounded in time, raw HTTP to the
sandbox, articles, a settable clock, and a callback URL that checks each push's signature.

wechatpy is synchronous, so its calls run in a thread, each bounded by `call`. Its token URL is
hard-coded to the real host, so tokens are fetched here and handed to the client: every request
goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import io
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
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


@dataclass
class Clock:
    """A settable wall clock, starting at noon Beijing time."""

    now: float = datetime(2026, 11, 24, 12, tzinfo=SHANGHAI).timestamp()

    def __call__(self) -> float:
        return self.now


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


def info(event: ET.Element) -> Iterator[tuple[str, str]]:
    publish = event.find("PublishEventInfo")
    assert publish is not None
    for element in publish.iter():
        if element.text and element.text.strip():
            yield element.tag, element.text
