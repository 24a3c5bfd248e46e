"""What every public page carries at its foot under 《政府网站发展指引》: 主办单位, 承办单位, 网站
标识码, the ICP and public-security filing numbers linked to their registries, contact, the
网站地图 and 我为政府网站找错 links; on the pages the website channel writes and on those the
app renders (search, 404); and the site map. In Debian's Chromium too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from channels import REGISTRY
from channels.site_footer import ICP_REGISTRY, footer
from dispatcher.settings import Settings
from dispatcher.storage.db import Database
from tests.helpers import (
    CENTER,
    Client,
    TokenFactory,
    all_in,
    approve_via_api,
    running_worker,
    wait_until,
)

CHROMIUM = Path("/usr/bin/chromium")
SETTINGS = {
    "GONGKAI_SITE_SPONSOR": "示范市人民政府办公室",
    "GONGKAI_SITE_OPERATOR": "示范市大数据中心",
    "GONGKAI_SITE_CODE": "9901000001",
    "GONGKAI_SITE_ICP": "示ICP备12345678号",
    "GONGKAI_SITE_POLICE_RECORD": "示公网安备 99010002000001号",
    "GONGKAI_SITE_ADDRESS": "示范市人民路1号",
    "GONGKAI_SITE_PHONE": "0990-12345678",
    "GONGKAI_SITE_ERROR_REPORT_URL":
        "https://zfwzgl.www.gov.cn/exposure/jiucuo.html?site_code={site_code}",
}  # fmt: skip
POLICE_HREF = "https://beian.mps.gov.cn/#/query/webSearch?code=99010002000001"
REPORT_HREF = "https://zfwzgl.www.gov.cn/exposure/jiucuo.html?site_code=9901000001"
SHOWN = (
    "主办单位：示范市人民政府办公室", "承办单位：示范市大数据中心", "网站标识码：9901000001",
    f'href="{ICP_REGISTRY}"', "示ICP备12345678号", f'href="{POLICE_HREF}"',
    "地址：示范市人民路1号", "联系电话：0990-12345678", f'href="{REPORT_HREF}"',
    "我为政府网站找错", 'href="/sitemap.html"',
)  # fmt: skip


@pytest.fixture
def dispatch_env(dispatch_env: dict[str, str]) -> dict[str, str]:
    return {**dispatch_env, **SETTINGS}


@pytest.fixture
async def one_item(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> int:
    item_id = await approve_via_api(api, make_token, title="门诊楼改造工程中标候选人公示")
    async with running_worker(dispatch_settings, dict(REGISTRY)):
        await wait_until(all_in(db, "published"))
    return item_id


def test_the_footer_is_made_from_the_settings_and_only_what_is_set() -> None:
    values: dict[str, Any] = {
        "sponsor": "办公室", "site_code": "9901000001", "icp": "示ICP备1号",
        "police_record": "示公网安备 99010002000001号",
        "error_report_url": "https://example.gov.cn/jiucuo?site_code={site_code}",
    }  # fmt: skip
    found = footer(values)
    assert found["sponsor"] == "办公室" and found["operator"] == ""
    assert found["icp"] == {"text": "示ICP备1号", "href": ICP_REGISTRY}
    assert found["police_record"]["href"] == POLICE_HREF
    assert found["error_report"] == "https://example.gov.cn/jiucuo?site_code=9901000001"
    empty = footer({})
    assert not any(empty.values())  # nothing set: nothing shown


async def test_every_public_page_carries_the_footer(api: Client, one_item: int) -> None:
    for path in ("/", f"/items/{one_item}.html", "/domains/bidding/", f"/agencies/{CENTER}/",
                 "/sitemap.html", "/search?q=公示", "/items/999999.html"):  # fmt: skip
        response = await api.get(path)
        assert response.status in (200, 404), path
        page = await response.text()
        for text in SHOWN:
            assert text in page, (path, text)


async def test_the_site_map_names_every_list(api: Client, one_item: int) -> None:
    page = await (await api.get("/sitemap.html")).text()
    assert "<h1>网站地图</h1>" in page
    assert f'href="/agencies/{CENTER}/"' in page and 'href="/regions/990101/"' in page
    assert 'href="/domains/bidding/"' in page and "中标候选人" in page  # a category
    assert 'href="/feeds/all.atom"' in page


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
async def test_a_reader_finds_the_footer_and_the_site_map_in_chromium(
    api: Client, one_item: int
) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = await browser.new_page(viewport={"width": 375, "height": 800}, locale="zh-CN")
            await page.goto(str(api.make_url(f"/items/{one_item}.html")))
            foot = page.locator("footer.site")
            await foot.scroll_into_view_if_needed()
            assert await foot.is_visible()
            text = await foot.inner_text()
            assert "主办单位：示范市人民政府办公室" in text and "网站标识码：9901000001" in text
            icp = foot.get_by_role("link", name="示ICP备12345678号")
            assert await icp.get_attribute("href") == ICP_REGISTRY
            report = foot.get_by_role("link", name="我为政府网站找错")
            assert await report.get_attribute("href") == REPORT_HREF
            assert await page.evaluate("document.documentElement.scrollWidth") <= 375

            await foot.get_by_role("link", name="网站地图").click()
            assert page.url.endswith("/sitemap.html")
            assert await page.locator("h1").inner_text() == "网站地图"
            await page.get_by_role("link", name="示范市公共资源交易中心").click()
            assert page.url.endswith(f"/agencies/{CENTER}/")
        finally:
            await browser.close()
