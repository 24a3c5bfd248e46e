"""The news-media channel against a real local outlet (`channels/media/sandbox.py`) on 127.0.0.1:
signatures, answers, retries after a timeout, redirects, filters, secret rotation, pacing; the
secret never shown. Everything speaks HTTP; nothing is patched."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio
from aiohttp import web
from pydantic import ValidationError

from channels.base import (
    ChannelContext,
    NotForChannel,
    PermanentError,
    Receipt,
    RetryableError,
)
from channels.media import media_factory
from channels.media.channel import MediaChannel, retry_after
from channels.media.events import event_body
from channels.media.pacing import Pace
from channels.media.sandbox import Outlet, OutletSandbox, RunningOutlets, running_outlets
from channels.media.settings import MediaSettings, new_secret, secret_bytes
from dispatcher.ops.cli import main
from tests.channels.conftest import BASE_URL, MakePub
from tests.helpers import CATALOGUE

SECRET, OLD_SECRET = new_secret(), new_secret()
Build = Callable[..., MediaChannel]


@pytest.fixture
async def outlets() -> AsyncIterator[RunningOutlets]:
    async with running_outlets(OutletSandbox([Outlet("xinhua", [SECRET])])) as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def build(outlets: RunningOutlets, session: aiohttp.ClientSession, tmp_path: Path) -> Build:
    """The channel `media:xinhua` as the worker builds it; settings overridable by keyword."""

    def make(name: str = "xinhua", **section: Any) -> MediaChannel:
        own = {"url": outlets.url_for(name), "secret": SECRET, "rate": 0, **section}
        settings = {"base_url": BASE_URL, "outline": CATALOGUE.outline(), **own}
        ctx = ChannelContext(f"media:{name}", settings, session, str(tmp_path))
        return media_factory(ctx)

    return make


def _outlet(outlets: RunningOutlets, name: str = "xinhua") -> Outlet:
    return outlets.sandbox.outlets[name]


async def test_an_event_is_signed_received_and_the_article_recorded(
    build: Build, outlets: RunningOutlets, make_pub: MakePub
) -> None:
    before = datetime.now(UTC)
    receipt = await build().publish(make_pub(key="7:1:media:xinhua"))

    [event] = _outlet(outlets).received
    assert (event.webhook_id, event.type, event.item_id, event.version) == (
        "7:1:media:xinhua", "item.published", 7, 1)  # fmt: skip
    assert event.data["title"] == make_pub().title
    assert event.data["url"] == f"{BASE_URL}/items/7.html"
    assert receipt.external_id == event.article_id
    assert receipt.url == f"{outlets.base_url}/outlets/xinhua/articles/1"
    assert receipt.confirmed_at is not None and receipt.confirmed_at >= before
    [withheld] = event.data["withheld"]  # where and why, never the value (never stored)
    assert withheld["notice"] == "依法不予公开（个人隐私）"


async def test_a_revision_and_a_withdrawal_have_their_types(
    build: Build, outlets: RunningOutlets, make_pub: MakePub
) -> None:
    channel = build()
    await channel.publish(make_pub(key="7:1:media:xinhua"))
    await channel.publish(make_pub(key="7:2:media:xinhua", version=2, change_note="更正报价"))
    withdrawal = make_pub(key="7:3:media:xinhua", version=3, action="withdraw",
                          change_note="项目终止")  # fmt: skip
    await channel.withdraw(withdrawal, Receipt(external_id="art-2"))
    assert _outlet(outlets).types(7) == ["item.published", "item.revised", "item.withdrawn"]
    last = _outlet(outlets).received[-1].data
    assert (last["withdrawn"], last["withdrawal_reason"], last["change_note"]) == (
        True, "项目终止", None)  # fmt: skip


async def test_a_delivery_retried_after_a_timeout_is_received_once(
    build: Build, outlets: RunningOutlets, make_pub: MakePub
) -> None:
    outlet = _outlet(outlets)
    outlet.script.append(2.0)  # takes the event, answers too late
    channel = build(timeout=0.3)
    pub = make_pub(key="7:1:media:xinhua")
    with pytest.raises(RetryableError, match=r"no answer within 0\.3 s"):
        await channel.publish(pub)

    receipt = await channel.publish(pub)  # the dispatcher's retry: the same webhook-id

    assert len(outlet.received) == 1 and outlet.duplicates == 1
    assert receipt.external_id == outlet.received[0].article_id


async def test_a_wrong_secret_is_refused_and_fails_at_once(
    build: Build, outlets: RunningOutlets, make_pub: MakePub
) -> None:
    with pytest.raises(PermanentError, match="HTTP 401") as info:
        await build(secret=OLD_SECRET).publish(make_pub())
    assert _outlet(outlets).received == [] and _outlet(outlets).refused
    assert OLD_SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("status", "kind", "wait"),
    [(503, RetryableError, 1.0), (429, RetryableError, 1.0), (500, RetryableError, None),
     (408, RetryableError, None), (404, PermanentError, None), (400, PermanentError, None)],
)  # fmt: skip
async def test_answers_decide_retry_or_failure(
    build: Build, outlets: RunningOutlets, make_pub: MakePub,
    status: int, kind: type[Exception], wait: float | None,
) -> None:  # fmt: skip
    _outlet(outlets).script.append(status)
    with pytest.raises(kind, match=f"HTTP {status}") as info:
        await build().publish(make_pub())
    if isinstance(info.value, RetryableError):
        assert info.value.retry_after == wait  # the outlet's Retry-After
    assert _outlet(outlets).received == []


async def test_connection_refused_is_retried(build: Build, make_pub: MakePub) -> None:
    channel = build(url="http://127.0.0.1:9/hook")  # nothing listens on port 9
    with pytest.raises(RetryableError, match="media:xinhua"):
        await channel.publish(make_pub())


@pytest.fixture
async def odd_server() -> AsyncIterator[str]:
    """An outlet that redirects, or answers a long refusal."""

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("http://127.0.0.1:9/elsewhere")

    async def long_refusal(request: web.Request) -> web.Response:
        return web.Response(status=422, text="拒" * 2000)

    app = web.Application()
    app.router.add_post("/redirect", redirect)
    app.router.add_post("/refuse", long_refusal)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_a_redirect_is_not_followed(build: Build, odd_server: str, make_pub: MakePub) -> None:
    with pytest.raises(PermanentError, match=r"307 redirects to http://127\.0\.0\.1:9/elsewhere"):
        await build(url=f"{odd_server}/redirect").publish(make_pub())


async def test_a_refusal_keeps_the_first_500_bytes(
    build: Build, odd_server: str, make_pub: MakePub
) -> None:
    with pytest.raises(PermanentError, match="HTTP 422") as info:
        await build(url=f"{odd_server}/refuse").publish(make_pub())
    said = str(info.value).split("HTTP 422: ", 1)[1]
    assert said.startswith("拒") and len(said.encode("utf-8", errors="replace")) <= 500 + 3


async def test_filters_skip_other_domains_and_regions_with_the_reason(
    build: Build, outlets: RunningOutlets, make_pub: MakePub
) -> None:
    with pytest.raises(NotForChannel, match="takes only the domains land"):
        await build(domains=["land"]).publish(make_pub())
    with pytest.raises(NotForChannel, match="takes only the regions 11"):
        await build(regions=["11"]).publish(make_pub(region="500103"))
    await build(domains=["bidding"], regions=["50", "11"]).publish(make_pub(region="500103"))
    await build(regions="5001").publish(make_pub(item_id=8, key="8:1:media:xinhua"))
    assert [e.item_id for e in _outlet(outlets).received] == [7, 8]
    # A withdrawal goes wherever the item went, whatever the filters say now.
    pub = make_pub(version=2, action="withdraw")
    await build(domains=["land"]).withdraw(pub, Receipt(external_id="art-1"))
    assert _outlet(outlets).types(7) == ["item.published", "item.withdrawn"]


async def test_unknown_domains_are_a_start_up_error(build: Build) -> None:
    with pytest.raises(ValueError, match="unknown domains fishing"):
        build(domains=["land", "fishing"])


async def test_a_rotated_secret_signs_with_the_old_one_during_the_grace_period(
    build: Build, outlets: RunningOutlets, make_pub: MakePub
) -> None:
    outlet = _outlet(outlets)
    outlet.secrets[:] = [OLD_SECRET]  # the outlet has not switched yet
    later = datetime.now(UTC) + timedelta(days=7)
    rotating = build(secret=SECRET, previous_secret=OLD_SECRET, previous_until=later)
    await rotating.publish(make_pub(key="7:1:media:xinhua"))
    assert len(outlet.received) == 1

    outlet.secrets[:] = [SECRET]  # it switched: still fine
    await rotating.publish(make_pub(key="8:1:media:xinhua", item_id=8))
    assert len(outlet.received) == 2

    outlet.secrets[:] = [OLD_SECRET]  # the grace period is over: the old one signs no more
    over = build(secret=SECRET, previous_secret=OLD_SECRET,
                 previous_until=datetime.now(UTC) - timedelta(seconds=1))  # fmt: skip
    with pytest.raises(PermanentError, match="HTTP 401"):
        await over.publish(make_pub(key="9:1:media:xinhua", item_id=9))


def test_only_http_urls_and_real_secrets_are_accepted() -> None:
    for url in ("ftp://example.cn/hook", "file:///etc/passwd", "http://user:pw@example.cn/",
                "javascript:alert(1)", "http://"):  # fmt: skip
        with pytest.raises(ValidationError, match="http"):
            MediaSettings(url=url)
    for secret, problem in (("s3cret-value", "must start with whsec_"),
                            ("whsec_not base64!", "base64"),
                            ("whsec_c2hvcnQ=", "24 to 64")):  # fmt: skip
        with pytest.raises(ValidationError, match=problem) as info:
            MediaSettings(secret=secret)
        assert secret not in str(info.value)
    with pytest.raises(ValidationError, match="UTC offset"):
        MediaSettings(previous_until=datetime(2026, 12, 1))  # naive: the point


async def test_the_secret_is_never_shown(
    build: Build, make_pub: MakePub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    channel = build(url="http://127.0.0.1:9/hook", previous_secret=OLD_SECRET,
                    previous_until=datetime.now(UTC) + timedelta(days=1))  # fmt: skip
    with pytest.raises(RetryableError) as info:
        await channel.publish(make_pub())
    settings = MediaSettings(url="http://127.0.0.1:9/", secret=SECRET)
    shown = [repr(channel), str(channel), repr(channel.signers), repr(settings), str(settings),
             str(settings.model_dump()), str(info.value), caplog.text]  # fmt: skip
    for text in shown:
        assert SECRET not in text and OLD_SECRET not in text
        assert SECRET.removeprefix("whsec_") not in text


def test_retry_after_takes_seconds_or_a_date() -> None:
    assert retry_after("120") == 120.0
    assert retry_after(None) is None and retry_after("soon") is None
    assert retry_after("99999999") == 86400.0  # at most a day
    soon = (datetime.now(UTC) + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    wait = retry_after(soon)
    assert wait is not None and 80 <= wait <= 90


async def test_pacing_is_shared_by_every_worker(fresh_redis: str) -> None:
    """Two workers' channels (two Pace objects, one Redis) share one outlet's slots: each
    reservation is one interval after the last, whoever makes it."""
    client = redis.asyncio.Redis.from_url(fresh_redis)
    try:
        first = Pace("xinhua", rate=10, redis=client, max_wait=5)
        second = Pace("xinhua", rate=10, redis=client, max_wait=5)
        waits = []
        for pace in (first, second, first, second):
            waits.append(await pace._shared(pace._script))
        for earlier, later in itertools.pairwise(waits):
            assert later > earlier + 0.09  # 0.1 s apart, less the time between two calls
        other = Pace("people", rate=10, redis=client, max_wait=5)  # another outlet: its own
        assert await other._shared(other._script) == 0
        slow = Pace("xinhua", rate=10, redis=client, max_wait=0.2)
        with pytest.raises(RetryableError, match=r"more than 0\.2 s") as info:
            await slow.slot()  # four slots are taken: the next is about 0.4 s off
        assert info.value.retry_after is not None and info.value.retry_after > 0.2
    finally:
        await client.aclose()


async def test_pacing_without_redis_holds_in_the_process() -> None:
    pace = Pace("xinhua", rate=20, max_wait=5)
    waits = [await pace._local() for _ in range(3)]
    assert waits[0] == 0 and waits[1] > 0.04 and waits[2] > waits[1] + 0.04
    assert await Pace("any", rate=0).slot() is None  # no limit


def test_relative_links_in_the_body_are_made_absolute(make_pub: MakePub) -> None:
    body = ('<p><a href="/items/3.html">前一公告</a><img src="files/map.png" alt="图">'
            '<a href="https://other.example.cn/?a=1&amp;b=2">外链</a></p>')  # fmt: skip
    event = json.loads(event_body(make_pub(body_html=body), BASE_URL, datetime.now(UTC)))
    html = event["data"]["body_html"]
    assert f'href="{BASE_URL}/items/3.html"' in html
    assert f'src="{BASE_URL}/items/files/map.png"' in html
    assert 'href="https://other.example.cn/?a=1&amp;b=2"' in html
    assert event["data"]["body_text"] == "前一公告外链"


def test_gongkai_media_secret_prints_a_new_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["media", "secret"]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["media", "secret"]) == 0
    second = capsys.readouterr().out.strip()
    assert first != second and len(secret_bytes(first)) == 32
