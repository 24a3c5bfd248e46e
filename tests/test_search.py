"""Site search: the n-gram index, what is public, the page, and the backfill migration."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from dispatcher.http.app import create_app
from dispatcher.items import search, workflow
from dispatcher.rules import grams
from dispatcher.rules.deadlines import today
from dispatcher.rules.rulebook import build_rules
from dispatcher.settings import Settings
from dispatcher.storage.db import Database, _alembic_config, current_revision, migrate
from dispatcher.storage.models import deliveries, search_documents, search_grams
from tests.helpers import APPROVER, EDITOR, approve_directly, bid_candidates

Client = TestClient[Any, Any]
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


@pytest.fixture
async def site(settings: Settings, db: Database) -> AsyncIterator[Client]:
    app = create_app(settings, db)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def go_live(db: Database, item_id: int, version: int, at: datetime = T0) -> None:
    """What the dispatcher does when the website confirms the page is live."""
    async with db.transaction() as conn:
        done = await conn.execute(
            deliveries.update()
            .where(
                deliveries.c.item_id == item_id,
                deliveries.c.version == version,
                deliveries.c.channel == "website",
            )
            .values(status="published", confirmed_at=at, updated_at=at)
        )
        assert done.rowcount == 1


async def published(settings: Settings, db: Database, at: datetime = T0, **changes: Any) -> int:
    item_id = await approve_directly(db, build_rules(settings), **changes)
    await go_live(db, item_id, 1, at)
    return item_id


async def found(db: Database, query: str, page: int = 1) -> list[int]:
    async with db.connect() as conn:
        results = await search.search(conn, query, page)
    return [hit.item_id for hit in results.hits]


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("中心医院，门诊楼", "中心医院 门诊楼"),
        ("２０２６年ＡＢＣ-12", "2026年abc 12"),
        ("  %_\\ ", ""),
        ("Café 〇", "café 〇"),
    ],
)
def test_normalize(text: str, normal: str) -> None:
    assert grams.normalize(text) == normal


@pytest.mark.parametrize(
    ("text", "stored", "needed"),
    [
        ("中心医院", {"中", "心", "医", "院", "中心", "心医", "医院"}, {"中心", "心医", "医院"}),
        ("医", {"医"}, {"医"}),
        ("2026年abc", {"2026", "年", "abc"}, {"2026", "年", "abc"}),
        ("x" * 50, {"x" * 40}, {"x" * 40}),
    ],
)
def test_grams(text: str, stored: set[str], needed: set[str]) -> None:
    assert grams.index_grams(text) == stored
    assert grams.query_grams(text) == needed


async def test_chinese_substrings(settings: Settings, db: Database, agencies: Any) -> None:
    hospital = await published(settings, db, title="示范市中心医院门诊楼改造工程中标候选人公示")
    school = await published(
        settings, db, T0 + timedelta(hours=1),
        title="示范市第一中学体育馆新建工程招标公告", summary="本项目已具备招标条件",
    )  # fmt: skip
    assert await found(db, "医院") == [hospital]
    assert await found(db, "院") == [hospital]
    assert await found(db, "门诊楼改造") == [hospital]
    assert await found(db, "评标委员会") == [hospital]  # in the summary
    assert await found(db, "招标条件") == [school]
    assert await found(db, "示范市") == [school, hospital]  # newest publication first
    assert await found(db, "工程 医院") == [hospital]  # terms: all must match
    assert await found(db, "医中") == []  # both characters there, not together
    assert await found(db, "中心医院公示") == []  # every bigram but 院公 is there
    assert await found(db, "公示评标") == []  # no phrase across title and summary
    assert await found(db, "法院") == []
    assert await found(db, "   ") == []


async def test_words_and_width(settings: Settings, db: Database, agencies: Any) -> None:
    item = await published(settings, db, title="２０２６年第3批ＡＢＣ设备采购 LED-Display")
    for query in ("2026年", "２０２６", "abc设备", "ABC", "led display", "LED-Display", "第3批"):
        assert await found(db, query) == [item], query
    for query in ("202", "ab", "displays", "3批abc设备 x"):
        assert await found(db, query) == [], query


async def test_like_wildcards_are_literal(settings: Settings, db: Database, agencies: Any) -> None:
    item = await published(settings, db, title="中心医院 100% 完成_验收")
    assert await found(db, "%") == []
    assert await found(db, "_") == []
    assert await found(db, "医%院") == []
    assert await found(db, "中_院") == []
    assert await found(db, "完成_验收") == [item]  # punctuation separates, as in the title
    assert await found(db, "100%") == [item]


async def test_only_what_the_website_shows(settings: Settings, db: Database, agencies: Any) -> None:
    live = await published(settings, db, title="已发布的医院公示")
    waiting = await approve_directly(db, build_rules(settings), title="待发布的医院公示")
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    scheduled = await approve_directly(
        db,
        build_rules(settings),
        title="定时发布的医院公示",
        publish_at=later,
        formed_on=today().isoformat(),
    )
    submitted, _ = await workflow.submit(
        db, build_rules(settings), EDITOR, bid_candidates(title="未审核的医院公示")
    )
    assert await found(db, "医院公示") == [live]
    await go_live(db, waiting, 1, T0 + timedelta(minutes=1))
    assert await found(db, "医院公示") == [waiting, live]
    assert {scheduled, submitted}.isdisjoint(await found(db, "医院公示"))

    await workflow.withdraw(db, APPROVER, live, {"reason": "信息有误"})
    assert await found(db, "医院公示") == [waiting]
    assert await found(db, "已发布") == []


async def test_revision_shows_once_live(settings: Settings, db: Database, agencies: Any) -> None:
    item = await published(settings, db, title="旧标题医院公示")
    rules = build_rules(settings)
    await workflow.revise(
        db, rules, EDITOR, item, {"change_note": "更正标题", "title": "新标题学校公示"}
    )
    await workflow.approve(db, APPROVER, item)
    assert await found(db, "旧标题") == [item]
    assert await found(db, "新标题") == []
    await go_live(db, item, 2, T0 + timedelta(hours=1))
    assert await found(db, "旧标题") == []
    assert await found(db, "新标题") == [item]
    assert await found(db, "公示") == [item]  # one result per item


async def test_index_rows_written_at_approval(
    settings: Settings, db: Database, agencies: Any
) -> None:
    item = await approve_directly(db, build_rules(settings), title="医院 ABC", summary="")
    async with db.connect() as conn:
        text = (await conn.execute(sa.select(search_documents.c.text))).scalar_one()
        grams = (
            await conn.execute(sa.select(search_grams.c.gram).where(search_grams.c.item_id == item))
        ).scalars()
        assert text == "医院 abc\n"
        assert set(grams) == {"医", "院", "医院", "abc"}


async def test_page_lists_results(
    site: Client, settings: Settings, db: Database, agencies: Any
) -> None:
    item = await published(settings, db, summary="评标委员会推荐的<b>候选人</b>")
    response = await site.get("/search", params={"q": "医院"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    html = await response.text()
    assert f'<a href="/items/{item}.html">示范市中心医院门诊楼改造工程中标候选人公示</a>' in html
    assert "工程建设项目招标投标 / 中标候选人" in html
    assert "示范市公共资源交易中心" in html
    assert "2026-11-23" in html
    assert "&lt;b&gt;候选人&lt;/b&gt;" in html
    assert "找到 1 条" in html
    assert 'value="医院"' in html
    assert 'rel="next"' not in html


async def test_page_escapes_everything(
    site: Client, settings: Settings, db: Database, agencies: Any
) -> None:
    await published(settings, db, title="<script>alert(1)</script>医院")
    html = await (await site.get("/search", params={"q": "医院"})).text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;医院" in html
    html = await (await site.get("/search", params={"q": '"><script>x</script>'})).text()
    assert "<script>" not in html
    assert "未找到与“&#34;&gt;&lt;script&gt;x&lt;/script&gt;”相关的信息" in html


async def test_page_without_query_and_no_results(site: Client, agencies: Any) -> None:
    response = await site.get("/search")
    assert response.status == 200
    html = await response.text()
    assert '<label for="q">关键词</label>' in html
    assert "未找到" not in html and "找到" not in html
    html = await (await site.get("/search", params={"q": "不存在的内容"})).text()
    assert "未找到与“不存在的内容”相关的信息" in html


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "医" * 101}, "关键词过长"),
        ({"q": "医院", "page": "0"}, "页码无效"),
        ({"q": "医院", "page": "51"}, "页码无效"),
        ({"q": "医院", "page": "二"}, "页码无效"),
        ({"q": "医院", "page": "-1"}, "页码无效"),
    ],
)
async def test_page_refuses_bad_input(
    site: Client, agencies: Any, params: dict[str, str], message: str
) -> None:
    response = await site.get("/search", params=params)
    assert response.status == 400
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert message in await response.text()


async def test_pagination(site: Client, settings: Settings, db: Database, agencies: Any) -> None:
    ids = [
        await published(settings, db, T0 + timedelta(minutes=n), title=f"第{n}号医院公示")
        for n in range(search.PAGE_SIZE + 5)
    ]
    newest_first = ids[::-1]
    assert await found(db, "医院") == newest_first[: search.PAGE_SIZE]
    assert await found(db, "医院", 2) == newest_first[search.PAGE_SIZE :]
    assert await found(db, "医院", 3) == []

    first = await (await site.get("/search", params={"q": "医院"})).text()
    assert "找到 25 条" in first and "第 1 / 2 页" in first
    assert 'rel="next" href="/search?q=%E5%8C%BB%E9%99%A2&amp;page=2"' in first
    assert 'rel="prev"' not in first
    assert len(re.findall(r'<a href="/items/\d+\.html">', first)) == search.PAGE_SIZE
    second = await (await site.get("/search", params={"q": "医院", "page": "2"})).text()
    assert 'rel="prev" href="/search?q=%E5%8C%BB%E9%99%A2&amp;page=1"' in second
    assert 'rel="next"' not in second
    assert '<ol class="results" start="21">' in second
    assert len(re.findall(r'<a href="/items/\d+\.html">', second)) == 5


async def test_migration_backfills_the_index(
    settings: Settings, db: Database, agencies: Any
) -> None:
    item = await published(settings, db, title="回填索引的医院公示")
    withdrawn = await published(settings, db, title="撤回的医院公示")
    await workflow.withdraw(db, APPROVER, withdrawn, {"reason": "信息有误"})
    from alembic import command

    def down(sync_conn: Any) -> None:
        config = _alembic_config()
        config.attributes["connection"] = sync_conn
        command.downgrade(config, "0001")

    async with db.transaction() as conn:
        await conn.run_sync(down)
        assert await current_revision(conn) == "0001"
    await migrate(db)
    assert await found(db, "医院公示") == [item]
    async with db.connect() as conn:
        docs = (await conn.execute(sa.select(search_documents.c.item_id))).scalars().all()
    assert sorted(docs) == [item, withdrawn]  # the withdrawal version is not indexed
