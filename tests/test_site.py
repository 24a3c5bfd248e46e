"""The public site end to end: approve items, a real worker with the real website and feeds
channels, then read the pages from the web app; conditional GET; `gongkai site rebuild`."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from channels import REGISTRY, paths
from dispatcher.ops.site import rebuild
from dispatcher.rules.deadlines import today
from dispatcher.settings import Settings
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries
from tests.helpers import (
    CATALOGUE,
    CENTER,
    Client,
    TokenFactory,
    all_in,
    approve_via_api,
    running_worker,
    wait_until,
)

PROJECT = "E9901000001234567"
REVISED = "门诊楼改造工程中标候选人公示（更正）"


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and "feeds" not in p.parts
    }


@pytest.fixture
async def published(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> dict[str, int]:
    """A bidding project's notice, candidates (revised once) and result, one item withdrawn."""
    ids = {
        "result": await approve_via_api(
            api, make_token, category="bid_result", title="门诊楼改造工程中标结果公告",
            fields={"winner": "示范建设集团有限公司"}, withheld=[],
        ),
        "notice": await approve_via_api(
            api, make_token, category="bid_notice", title="门诊楼改造工程招标公告",
            fields={"bid_deadline": (today() + timedelta(days=30)).isoformat()}, withheld=[],
        ),
        "candidates": await approve_via_api(
            api, make_token, title="<script>alert(1)</script>公示", formed_on=today().isoformat()
        ),
        "other": await approve_via_api(
            api, make_token, project_code="E9901000009999999", title="另一项目"
        ),
    }  # fmt: skip
    async with running_worker(dispatch_settings, dict(REGISTRY)):
        await wait_until(all_in(api_engine := db, "published"))
        editor = await make_token("editor", holder="编辑")
        approver = await make_token("approver", holder="审核")
        revised = await api.post(
            f"/api/v1/items/{ids['candidates']}/revisions",
            json={
                "change_note": "更正第一名投标报价",
                "title": "门诊楼改造工程中标候选人公示（更正）",
            },
            headers=editor,
        )
        assert revised.status in (200, 201), await revised.text()
        approved = await api.post(f"/api/v1/items/{ids['candidates']}/approve", headers=approver)
        assert approved.status == 200, await approved.text()
        gone = await api.post(
            f"/api/v1/items/{ids['other']}/withdraw", json={"reason": "项目终止"}, headers=approver
        )
        assert gone.status == 200, await gone.text()
        await wait_until(all_in(api_engine, "published", "withdrawn", "skipped"))
    return ids


async def test_a_reader_finds_the_items_on_the_site(api: Client, published: dict[str, int]) -> None:
    home = await api.get("/")
    assert home.status == 200
    assert home.headers["Content-Type"] == "text/html; charset=utf-8"
    text = await home.text()
    assert '<html lang="zh-CN">' in text
    assert "门诊楼改造工程中标候选人公示（更正）" in text
    assert "【已撤回】另一项目" in text
    assert "<script>alert(1)</script>" not in text

    domain = await (await api.get("/domains/bidding/")).text()
    assert "门诊楼改造工程招标公告" in domain and "工程建设项目招标投标" in domain

    item = await (await api.get(f"/items/{published['candidates']}.html")).text()
    assert '<th scope="row">主题分类</th><td>工程建设项目招标投标 / 中标候选人</td>' in item
    assert "依法不予公开（个人隐私）" in item
    assert "更正第一名投标报价" in item
    assert f'href="/projects/{PROJECT}/"' in item

    project = await (await api.get(f"/projects/{PROJECT}/")).text()
    titles = re.findall(r'<a href="/items/\d+\.html">(.*?)</a>', project)
    assert titles == [
        "门诊楼改造工程招标公告", REVISED, "门诊楼改造工程中标结果公告",
    ]  # fmt: skip

    agency = await api.get(f"/agencies/{CENTER}/")
    assert agency.status == 200 and "示范市公共资源交易中心" in await agency.text()
    assert (await api.get("/regions/990101/")).status == 200
    assert (await api.get("/static/site.css")).headers["Content-Type"].startswith("text/css")

    found = await (await api.get("/search", params={"q": "中标候选人"})).text()
    assert REVISED in found and "另一项目" not in found  # withdrawn: no longer searchable
    assert "未找到" in await (await api.get("/search", params={"q": "另一项目"})).text()

    atom = await api.get("/feeds/all.atom")
    assert atom.status == 200
    assert atom.headers["Content-Type"].startswith("application/atom+xml")
    assert "门诊楼改造工程招标公告" in await atom.text()


async def test_the_website_time_is_the_first_publication_for_the_audit(
    api: Client, published: dict[str, int], make_token: TokenFactory
) -> None:
    auditor = await make_token("auditor")
    item = await (await api.get(f"/api/v1/items/{published['candidates']}", headers=auditor)).json()

    first, second = item["versions"]
    website = [d for d in first["deliveries"] if d["channel"] == "website"]
    assert item["first_published_at"] == first["published_at"] == website[0]["confirmed_at"]
    assert first["on_time"] is True and second["on_time"] is True
    assert second["published_at"] > first["published_at"]


async def test_pages_answer_conditional_requests(api: Client, published: dict[str, int]) -> None:
    first = await api.get(f"/items/{published['notice']}.html")
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert first.headers["Cache-Control"] == "no-cache"

    again = await api.get(f"/items/{published['notice']}.html", headers={"If-None-Match": etag})
    since = await api.get("/", headers={"If-Modified-Since": modified})

    assert again.status == 304 and await again.read() == b""
    assert since.status in (200, 304)  # the home page may have changed after the item
    head = await api.head("/feeds/all.rss")
    assert head.status == 200 and head.headers["Content-Type"].startswith("application/rss+xml")


@pytest.mark.parametrize(
    "path",
    [
        "/items/999999.html",
        "/items/0.html",
        "/domains/nonexistent/",
        "/domains/..%2F..%2Fetc/",
        "/agencies/%2E%2E/",
        "/projects/nope/page-1.html",
        "/feeds/domains/x.txt",
        "/all/page-99.html",
    ],
)
async def test_missing_pages_are_a_chinese_404(api: Client, path: str) -> None:
    response = await api.get(path)

    assert response.status == 404
    assert "页面不存在" in await response.text()


async def test_rebuild_regenerates_the_same_site_from_the_database(
    api: Client, published: dict[str, int], db: Database, dispatch_settings: Settings
) -> None:
    site = dispatch_settings.data_path / "site"
    before = _snapshot(site)
    (site / "items" / "424242.html").write_text("stale")
    for page in list(site.glob("items/*.html"))[:2]:
        page.unlink()

    replayed = await rebuild(db, dispatch_settings, CATALOGUE, batch=4)  # pages of 4: keyset paging

    assert replayed == 6  # four first versions, one revision, one withdrawal
    assert _snapshot(site) == before
    assert (site / paths.feed_file(None, None, "atom")).is_file()  # feeds are left alone


async def test_rebuild_after_a_crash_puts_every_item_where_publishing_did(
    api: Client, published: dict[str, int], db: Database, dispatch_settings: Settings
) -> None:
    """The probe's finding: a crash between an item going live and the dispatcher recording it
    (kill -9 of serve mid-burst) made the recovered delivery's confirmation later than items
    published after it, so `site rebuild` moved it to another place in the lists."""
    first = published["result"]  # the oldest item in every list
    async with (
        db.transaction() as conn
    ):  # its deliveries as a crash leaves them: done, not recorded
        await conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.item_id == first, deliveries.c.version == 1)
            .values(status="pending", confirmed_at=None, next_attempt_at=sa.func.now())
        )
    async with running_worker(dispatch_settings, dict(REGISTRY)):
        await wait_until(all_in(db, "published", "withdrawn", "skipped"))
    site = dispatch_settings.data_path / "site"
    pages, feeds = _snapshot(site), _feed_ids(site)
    assert all(str(first) in ids[-1] for ids in feeds.values() if ids)  # still the oldest

    await rebuild(db, dispatch_settings, CATALOGUE)
    await rebuild(db, dispatch_settings, CATALOGUE, name="feeds")

    assert _snapshot(site) == pages
    assert _feed_ids(site) == feeds


def _feed_ids(site: Path) -> dict[str, list[str]]:
    """Every feed file's entry ids, in order."""
    return {
        str(p.relative_to(site)): re.findall(r"<id>(tag:[^<]+)</id>", p.read_text("utf-8"))
        for p in sorted(site.glob("feeds/**/*.atom"))
    }


async def test_a_corrupt_feeds_state_is_regenerated_from_the_database(
    api: Client, published: dict[str, int], db: Database, dispatch_settings: Settings,
    make_token: TokenFactory, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.ERROR, logger="channels")
    site = dispatch_settings.data_path / "site"
    before = _feed_ids(site)
    state = dispatch_settings.data_path / "state" / "feeds" / "all.json"
    state.write_text(state.read_text("utf-8")[:40], "utf-8")  # truncated, as by a full disk

    # The next item's feeds delivery fails, naming the file and the way out.
    late = await approve_via_api(api, make_token, project_code="E9901000007777777",
                                 formed_on=today().isoformat())  # fmt: skip
    async with running_worker(dispatch_settings, dict(REGISTRY)):
        await wait_until(all_in(db, "published", "withdrawn", "skipped", "failed"))
    async with db.connect() as conn:
        [failed] = (
            await conn.execute(sa.select(deliveries).where(deliveries.c.status == "failed"))
        ).all()
    assert (failed.item_id, failed.channel) == (late, "feeds")
    assert "all.json is unreadable" in failed.last_error
    assert "gongkai feeds rebuild" in failed.last_error
    # Said loudly: at ERROR in the log, on /readyz (which still answers 200) and in /metrics.
    [logged] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert failed.last_error.endswith(logged)
    ready = await api.get("/readyz")
    state = (await ready.json())["checks"]["channel state"]
    assert ready.status == 200 and "all.json is unreadable" in state, state
    metrics = await (await api.get("/metrics")).text()
    assert 'gongkai_channel_state_unreadable{channel="feeds"} 1.0' in metrics

    replayed = await rebuild(db, dispatch_settings, CATALOGUE, batch=4, name="feeds")
    assert (await (await api.get("/readyz")).json())["checks"]["channel state"] == "ok"

    assert replayed == 6  # every confirmed feeds delivery: not the failed one
    assert _feed_ids(site) == before  # the same entries, in the same order, in every feed
    retry = await api.post(f"/api/v1/deliveries/{failed.id}/retry",
                           headers=await make_token("editor", holder="编辑"))  # fmt: skip
    assert retry.status == 200, await retry.text()
    async with running_worker(dispatch_settings, dict(REGISTRY)):
        await wait_until(all_in(db, "published", "withdrawn", "skipped"))
    assert len(_feed_ids(site)["feeds/all.atom"]) == len(before["feeds/all.atom"]) + 1


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
async def test_a_reader_browses_in_chromium(api: Client, published: dict[str, int]) -> None:
    """Debian's Chromium, headless: home → domain → item → project, by clicking links."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = await browser.new_page(viewport={"width": 375, "height": 800}, locale="zh-CN")
            await page.goto(str(api.make_url("/")))
            assert await page.title() == "信息公开专栏 - 公共资源配置领域政府信息公开"
            assert "【已撤回】另一项目" in await page.locator("section.latest").inner_text()
            wide = await page.evaluate("document.documentElement.scrollWidth")
            assert wide <= 375  # fits a phone screen: nothing scrolls sideways

            await (
                page.locator("section.domains")
                .get_by_role("link", name="工程建设项目招标投标")
                .click()
            )
            assert page.url.endswith("/domains/bidding/")
            assert await page.locator("h1").inner_text() == "领域 工程建设项目招标投标"

            await page.get_by_role("link", name=REVISED).click()
            assert page.url.endswith(f"/items/{published['candidates']}.html")
            catalogue = page.locator("table.catalogue")
            assert "工程建设项目招标投标 / 中标候选人" in await catalogue.inner_text()
            withheld = page.locator("td.withheld")
            assert await withheld.inner_text() == "依法不予公开（个人隐私）"
            history = await page.locator("section.history tbody tr").all_inner_texts()
            assert [row.split("\t")[-1] for row in history] == ["首次发布", "更正第一名投标报价"]

            await page.get_by_role("link", name=f"本项目全部信息（{PROJECT}）").click()
            assert page.url.endswith(f"/projects/{PROJECT}/")
            steps = await page.locator("ol.lifecycle > li > h2").all_inner_texts()
            assert steps[1:6] == ["招标公告", "资格审查结果", "开标记录", "中标候选人", "中标结果"]
            links = await page.locator("ol.lifecycle a").all_inner_texts()
            assert links == ["门诊楼改造工程招标公告", REVISED, "门诊楼改造工程中标结果公告"]
        finally:
            await browser.close()


async def test_public_pages_send_a_content_security_policy(
    api: Client, published: dict[str, int]
) -> None:
    """No script and no remote image runs or loads on a public page, whatever a body holds."""
    for path in ("/", f"/items/{published['result']}.html", "/items/999999.html", "/search?q=医院"):
        response = await api.get(path)
        policy = response.headers.get("Content-Security-Policy", "")
        assert "default-src 'none'" in policy and "img-src 'self' data:" in policy, path
        assert "script-src" not in policy  # none: default-src 'none' forbids every script
        assert response.headers["X-Content-Type-Options"] == "nosniff"
