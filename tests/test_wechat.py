"""WeChat official accounts end to end: the real worker, wechatpy, and the local stand-in of the
WeChat API (`channels/wechat/sandbox.py`) on 127.0.0.1, told to fail where a test needs it.

Runs on SQLite (and PostgreSQL with TEST_DATABASE_URL) with the Redis in REDIS_URL or the
embedded one. Waits are bounded; nothing here sleeps to synchronise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import channels
from channels.wechat.sandbox import RunningSandbox, Sandbox, running_sandbox
from dispatcher.http.app import create_app
from dispatcher.items import workflow
from dispatcher.rules.rulebook import Rules, build_rules
from dispatcher.settings import Settings, load_settings
from dispatcher.storage import ledger
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries, events
from tests.helpers import (
    APPROVER,
    CENTER,
    EDITOR,
    HOUSING,
    all_in,
    bid_candidates,
    running_worker,
    statuses,
    wait_until,
)

APPID, SECRET = "wx1111111111111111", "secret-one"
ZRZY_APPID, ZRZY_SECRET = "wx2222222222222222", "secret-two"


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with running_sandbox(Sandbox({APPID: SECRET, ZRZY_APPID: ZRZY_SECRET})) as running:
        yield running


def wechat_env(dispatch_env: dict[str, str], base_url: str, **more: str) -> dict[str, str]:
    return {
        **dispatch_env,
        "GONGKAI_CHANNELS": "website,feeds,wechat",
        "GONGKAI_WECHAT_APPID": APPID,
        "GONGKAI_WECHAT_SECRET": SECRET,
        "GONGKAI_WECHAT_API_BASE": base_url,
        "GONGKAI_WECHAT_FIRST_LOOK": "0.05",
        **more,
    }


@pytest.fixture
def wx_settings(dispatch_env: dict[str, str], sandbox: RunningSandbox) -> Settings:
    return load_settings(env=wechat_env(dispatch_env, sandbox.base_url))


async def publish(db: Database, rules: Rules, agency: str = CENTER, **changes: Any) -> int:
    """Submit and approve an item for the website and every enabled WeChat account."""
    wechats = [n for n in rules.enabled_channels if n.startswith("wechat")]
    item = bid_candidates(channels=["website", *wechats], **changes)
    editor = EDITOR if agency == CENTER else EDITOR.__class__(agency, "editor", "编辑")
    approver = APPROVER if agency == CENTER else APPROVER.__class__(agency, "approver", "审核")
    if agency != CENTER:
        item["implementing_agency"] = agency
    item_id, _ = await workflow.submit(db, rules, editor, item)
    await workflow.approve(db, approver, item_id)
    return item_id


async def wechat_row(db: Database, item_id: int, version: int = 1, channel: str = "wechat") -> Any:
    async with db.connect() as conn:
        return (
            await conn.execute(
                sa.select(deliveries).where(
                    deliveries.c.item_id == item_id,
                    deliveries.c.version == version,
                    deliveries.c.channel == channel,
                )
            )
        ).one()


async def test_publish_confirm_and_withdraw(
    db: Database, agencies: list[str], wx_settings: Settings, sandbox: RunningSandbox
) -> None:
    rules = build_rules(wx_settings)
    long_title = "示范市中心医院门诊楼及住院部综合改造提升工程施工总承包（第二标段）中标候选人公示"
    item_id = await publish(db, rules, title=long_title)
    async with running_worker(wx_settings, channels.REGISTRY):
        await wait_until(all_in(db, "published"))
        row = await wechat_row(db, item_id)
        [article] = sandbox.sandbox.published(APPID)
        assert row.external_id == article.article_id and row.url == article.url
        assert row.confirmed_at is not None and row.confirmed_at <= datetime.now(UTC)
        assert {"draft_media_id", "publish_id", "article_id"} <= set(row.steps)
        # The article: a title within 32 characters, the full one opening the body, the
        # metadata, the structured fields, the withheld part's notice and 阅读原文.
        assert len(article.title) <= 32 and article.title.endswith("…")
        assert long_title in article.content
        for text in ("索引号", "发布机构", "示范市公共资源交易中心", "示范建设集团有限公司",
                     "依法不予公开"):  # fmt: skip
            assert text in article.content, text
        assert "13800000000" not in article.content  # the withheld phone
        assert article.content_source_url.endswith(f"/items/{item_id}.html?v=1")
        assert len(sandbox.sandbox.thumbs(APPID)) == 1
        async with db.connect() as conn:
            report = await ledger.verify(conn)
            kinds = (await conn.execute(sa.select(events.c.kind))).scalars().all()
        assert report.ok and "delivery.steps_saved" in kinds

        await workflow.withdraw(db, APPROVER, item_id, {"reason": "项目终止"})
        await wait_until(all_in(db, "published", "withdrawn"))
    [gone] = sandbox.sandbox.published(APPID)
    assert gone.deleted
    page = await _get(f"{sandbox.base_url}/sandbox/")
    assert "微信公众号沙箱" in page


async def test_eight_concurrent_publishes_fetch_one_token_and_one_cover(
    db: Database, agencies: list[str], wx_settings: Settings, sandbox: RunningSandbox
) -> None:
    rules = build_rules(wx_settings)
    for n in range(8):
        await publish(db, rules, project_code=f"E99010000000{n:05d}")
    async with running_worker(wx_settings, channels.REGISTRY):
        await wait_until(all_in(db, "published"), 60)
    box = sandbox.sandbox
    assert len(box.published(APPID)) == 8
    assert box.count("cgi-bin/token") == 1
    assert box.count("cgi-bin/material/add_material") == 1
    assert box.count("cgi-bin/draft/add") == box.count("cgi-bin/freepublish/submit") == 8


async def test_a_token_refused_after_a_refresh_fails_clearly_and_boundedly(
    db: Database, agencies: list[str], wx_settings: Settings, sandbox: RunningSandbox
) -> None:
    sandbox.sandbox.faults.invalid_token = True
    rules = build_rules(wx_settings)
    item_id = await publish(db, rules)
    async with running_worker(wx_settings, channels.REGISTRY):
        await wait_until(all_in(db, "published", "failed"), 60)
    row = await wechat_row(db, item_id)
    assert row.status == "failed"
    assert "40001" in row.last_error and "gave up after 4 attempts" in row.last_error
    # Per attempt: a token, the refused call, one fresh token, the call again.
    assert sandbox.sandbox.count() <= 4 * 4
    assert sandbox.sandbox.count("cgi-bin/token") <= 2 * 4


async def test_rejected_by_review_fails_with_the_reason(
    db: Database, agencies: list[str], wx_settings: Settings, sandbox: RunningSandbox
) -> None:
    sandbox.sandbox.faults.statuses = [1, 4]
    item_id = await publish(db, build_rules(wx_settings))
    async with running_worker(wx_settings, channels.REGISTRY):
        await wait_until(all_in(db, "published", "failed"))
    row = await wechat_row(db, item_id)
    assert row.status == "failed"
    assert "rejected by review (审核不通过)" in row.last_error
    assert sandbox.sandbox.count("cgi-bin/freepublish/submit") == 1  # failed, not re-sent


async def test_busy_and_rate_limits_defer_the_delivery(
    db: Database, agencies: list[str], wx_settings: Settings, sandbox: RunningSandbox
) -> None:
    sandbox.sandbox.faults.busy = 2  # -1 twice: retried after a few seconds, then published
    item_id = await publish(db, build_rules(wx_settings))
    async with running_worker(wx_settings, channels.REGISTRY):
        await wait_until(all_in(db, "published"), 60)
        assert len(sandbox.sandbox.published(APPID)) == 1
        sandbox.sandbox.faults.rate_limited = 1  # 45011: WeChat asks for the next minute
        second = await publish(db, build_rules(wx_settings), project_code="E9901000009999999")
        await wait_until(lambda: _status_is(db, second, "retrying"))
    row = await wechat_row(db, second)
    assert "45011" in row.last_error
    wait = (row.next_attempt_at - datetime.now(UTC)).total_seconds()
    assert 50 < wait <= 61
    assert (await wechat_row(db, item_id)).attempts >= 2


async def test_two_accounts_route_by_agency(
    db: Database, agencies: list[str], dispatch_env: dict[str, str], sandbox: RunningSandbox
) -> None:
    env = wechat_env(
        dispatch_env, sandbox.base_url,
        GONGKAI_CHANNELS="website,wechat,wechat:zrzy",
        GONGKAI_WECHAT_ZRZY_APPID=ZRZY_APPID,
        GONGKAI_WECHAT_ZRZY_SECRET=ZRZY_SECRET,
        GONGKAI_WECHAT_ZRZY_API_BASE=sandbox.base_url,
        GONGKAI_WECHAT_ZRZY_FIRST_LOOK="0.05",
        GONGKAI_WECHAT_ZRZY_AGENCIES=HOUSING,
    )  # fmt: skip
    settings = load_settings(env=env)
    rules = build_rules(settings)
    center_item = await publish(db, rules)
    housing_item = await publish(db, rules, agency=HOUSING, project_code="E9901000007654321")
    async with running_worker(settings, channels.REGISTRY):
        await wait_until(all_in(db, "published", "skipped"))
    skipped = await wechat_row(db, center_item, channel="wechat:zrzy")
    assert skipped.status == "skipped" and HOUSING in skipped.last_error
    assert (await wechat_row(db, housing_item, channel="wechat:zrzy")).status == "published"
    box = sandbox.sandbox
    assert len(box.published(APPID)) == 2 and len(box.published(ZRZY_APPID)) == 1
    assert box.count(appid=ZRZY_APPID, endpoint="cgi-bin/draft/add") == 1


async def test_a_revision_replaces_the_article(
    db: Database, agencies: list[str], wx_settings: Settings, sandbox: RunningSandbox
) -> None:
    rules = build_rules(wx_settings)
    item_id = await publish(db, rules)
    async with running_worker(wx_settings, channels.REGISTRY):
        await wait_until(all_in(db, "published"))
        revision = {"change_note": "更正投标报价", "summary": "更正后的候选人"}
        await workflow.revise(db, rules, EDITOR, item_id, revision)
        await workflow.approve(db, APPROVER, item_id)
        await wait_until(all_in(db, "published", "skipped"))
    first, second = sandbox.sandbox.published(APPID)
    assert first.deleted and not second.deleted
    assert second.title.startswith("【更正】") and "更正说明：更正投标报价" in second.content
    row = await wechat_row(db, item_id, version=2)
    assert row.steps["replaced"] == first.article_id


async def test_body_images_are_uploaded_and_rewritten(
    db: Database, agencies: list[str], wx_settings: Settings, sandbox: RunningSandbox
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64

    async def serve_image(request: web.Request) -> web.Response:
        if request.path == "/a.png":
            return web.Response(body=png, content_type="image/png")
        return web.Response(body=b"GIF89a", content_type="image/gif")

    app = web.Application()
    app.router.add_get("/{name}", serve_image)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    body = (f'<p>现场照片：</p><p><img src="http://127.0.0.1:{port}/a.png" alt="现场"></p>'
            f'<p><img src="http://127.0.0.1:{port}/b.gif" alt="示意图"></p>')  # fmt: skip
    try:
        # The images' server is an allowed origin (site.image_hosts), port and all.
        rules = dataclasses.replace(build_rules(wx_settings),
                                    image_hosts=frozenset({f"127.0.0.1:{port}"}))  # fmt: skip
        item_id = await publish(db, rules, body_html=body)
        async with running_worker(wx_settings, channels.REGISTRY):
            await wait_until(all_in(db, "published"))
    finally:
        await runner.cleanup()
    [article] = sandbox.sandbox.published(APPID)
    [image] = sandbox.sandbox.images(APPID)
    assert f"127.0.0.1:{port}" not in article.content  # no external image is left
    assert image.url in article.content and "〔图片：示意图，见网站原文〕" in article.content
    row = await wechat_row(db, item_id)
    assert row.steps["images"] == {f"http://127.0.0.1:{port}/a.png": image.url}
    assert row.steps["images_left_out"] == [f"http://127.0.0.1:{port}/b.gif"]


async def test_the_event_push_confirms_at_once(
    db: Database, agencies: list[str], dispatch_env: dict[str, str], sandbox: RunningSandbox
) -> None:
    """With the account's server configuration (服务器配置) set, WeChat's PUBLISHJOBFINISH event
    confirms the delivery long before its next look (ten minutes away here)."""
    env = wechat_env(dispatch_env, sandbox.base_url, GONGKAI_WECHAT_FIRST_LOOK="600",
                     GONGKAI_WECHAT_CALLBACK_TOKEN="hook-token")  # fmt: skip
    settings = load_settings(env=env)
    app = create_app(settings, db, redis_url=settings.storage.redis_url)
    async with TestClient(TestServer(app, host="127.0.0.1")) as web_client:
        hook = str(web_client.make_url("/hooks/wechat"))
        box = sandbox.sandbox
        box.add_account(APPID, SECRET, callback_url=hook, callback_token="hook-token")
        box.faults.statuses, box.faults.push_after = [1, 0], 0.2
        # WeChat checks the URL first; a wrong signature is refused.
        check = {"timestamp": "1700000000", "nonce": "n1", "echostr": "e-123"}
        signed = {**check, "signature": _sign("hook-token", "1700000000", "n1")}
        assert await (await web_client.get("/hooks/wechat", params=signed)).text() == "e-123"
        forged = await web_client.get("/hooks/wechat", params={**check, "signature": "0" * 40})
        assert forged.status == 403
        assert (await web_client.post("/hooks/feeds")).status == 404
        item_id = await publish(db, build_rules(settings))
        async with running_worker(settings, channels.REGISTRY):
            await wait_until(all_in(db, "published"), 15)
    row = await wechat_row(db, item_id)
    assert row.external_id == box.published(APPID)[0].article_id


def _sign(token: str, timestamp: str, nonce: str) -> str:
    import hashlib

    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()  # noqa: S324


async def _status_is(db: Database, item_id: int, status: str) -> bool:
    return any(r[0] == item_id and r[2] == "wechat" and r[4] == status for r in await statuses(db))


async def _get(url: str) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as res:
        assert res.status == 200
        return await res.text()
