"""The website channel: item pages, lists numbered from the oldest, project pages, the home page,
withdrawals, escaping, incremental writes and a rebuild that gives the same bytes."""

from __future__ import annotations

import asyncio
import errno
import os
import re
import shutil
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from channels import paths
from channels.base import (
    Channel,
    ChannelContext,
    PermanentError,
    Publication,
    Receipt,
    RetryableError,
)
from channels.files import broken_states, map_errors
from channels.site_fields import field_tables
from channels.website import TEMPLATES_DIR, WebsiteChannel, website_factory
from tests.channels.conftest import BASE_URL, Ctx, MakePub
from tests.helpers import CATALOGUE

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


@pytest.fixture
def site(context: Ctx) -> Callable[..., ChannelContext]:
    """A website context with the catalogue's domains (as the worker passes them)."""

    def make(**settings: object) -> ChannelContext:
        return context(outline=CATALOGUE.outline(), **settings)

    return make


def _site(ctx: ChannelContext) -> Path:
    return Path(ctx.data_dir) / "site"


def _read(ctx: ChannelContext, relative: str) -> str:
    return (_site(ctx) / relative).read_text("utf-8")


def _cells(page: str) -> dict[str, str]:
    return dict(re.findall(r'<tr><th scope="row">(.*?)</th><td>(.*?)</td></tr>', page))


def _titles(page: str) -> list[str]:
    return re.findall(r'<a href="/items/\d+\.html">(.*?)</a>', page)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _numbered(make_pub: MakePub, n: int, **overrides: object) -> Publication:
    values: dict[str, object] = {
        "item_id": n, "title": f"第{n}号公告", "index_no": f"IDX-{n}",
        "approved_at": T0 + timedelta(minutes=n),
    }  # fmt: skip
    values.update(overrides)
    return make_pub(**values)


async def test_the_item_page_shows_the_catalogue_metadata_in_chinese(
    site: Ctx, make_pub: MakePub
) -> None:
    ctx = site()
    channel = website_factory(ctx)
    assert isinstance(channel, Channel)
    before = datetime.now(UTC)

    receipt = await channel.publish(make_pub())

    assert receipt.external_id == "items/7.html"
    assert receipt.url == f"{BASE_URL}/items/7.html"
    assert receipt.confirmed_at is not None and receipt.confirmed_at >= before
    page = _read(ctx, "items/7.html")
    assert page.startswith('<!doctype html>\n<html lang="zh-CN">')
    assert "<h1>某某市中心医院门诊楼改造工程中标候选人公示</h1>" in page
    assert _cells(page) == {
        "索引号": "12990100MB0000004D/2026-00007",
        "主题分类": "工程建设项目招标投标 / 中标候选人",
        "发布机构": "示范市公共资源交易中心",
        "成文日期": "2026-11-20",
        "发布日期": "2026-11-24",
        "文号": "示公资〔2026〕12号",
        "主题词": "招标投标；中标候选人",
        "有效性": "有效",
    }
    assert "<p>评标委员会推荐的中标候选人及排序</p>" in page
    assert "<p>公示期三日。</p>" in page  # sanitized at intake: inserted as HTML
    assert '<link rel="stylesheet" href="/static/site.css">' in page
    assert (_site(ctx) / "static" / "site.css").read_bytes() == (
        TEMPLATES_DIR / "static" / "site.css"
    ).read_bytes()


async def test_fields_are_tables_with_labels_and_withheld_cells_say_why(
    site: Ctx, make_pub: MakePub
) -> None:
    ctx = site()
    await website_factory(ctx).publish(make_pub())

    page = _read(ctx, "items/7.html")
    header = re.search(r"<caption>中标候选人</caption>\s*<thead>\s*<tr>(.*?)</tr>", page)
    assert header is not None
    assert re.findall(r"<th scope=\"col\">(.*?)</th>", header[1]) == [
        "排序", "名称", "投标报价（元）", "项目负责人", "项目负责人联系电话",
    ]  # fmt: skip
    assert (
        "<tr><td>1</td><td>某某建设集团有限公司</td><td>12345678.00</td><td>张某</td>"
        '<td class="withheld">依法不予公开（个人隐私）</td></tr>' in page
    )
    assert "<td>13900000000</td>" in page  # row 2's phone was not withheld
    assert "<li>中标候选人 第1行 项目负责人联系电话：依法不予公开（个人隐私）</li>" in page
    assert "<tr><td>duration_days</td><td>180</td></tr>" in page  # no label: the key


def test_field_tables_put_scalars_first_and_fall_back_to_json_for_nesting() -> None:
    tables = field_tables(
        {"rows": [{"a": 1}, {"b": None}], "flag": True, "tags": ["x", "y"], "nested": {"k": [1]}},
        {"rows": "行", "rows.b": "乙"},
        ({"field": "fields.gone", "basis_name": "商业秘密"},),
    )

    assert tables[0].caption is None
    assert [tuple(c.text for c in row) for row in tables[0].rows] == [
        ("flag", "是"), ("tags", "x；y"), ("nested", '{"k": [1]}'),
        ("gone", "依法不予公开（商业秘密）"),
    ]  # fmt: skip
    assert (tables[1].caption, tables[1].columns) == ("行", ("乙", "a"))
    assert [tuple(c.text for c in row) for row in tables[1].rows] == [("", "1"), ("", "")]


@pytest.mark.parametrize(("validity", "shown"), [("repealed", "废止"), ("expired", "失效")])
async def test_validity_is_shown_in_chinese(
    site: Ctx, make_pub: MakePub, validity: str, shown: str
) -> None:
    ctx = site()
    await website_factory(ctx).publish(make_pub(validity=validity))

    assert _cells(_read(ctx, "items/7.html"))["有效性"] == shown


async def test_user_text_is_escaped_on_every_page(site: Ctx, make_pub: MakePub) -> None:
    ctx = site()
    pub = make_pub(
        title="<script>alert(1)</script>",
        summary="a & b <i>",
        fields={"note": "<img src=x onerror=alert(1)>"},
        agency_name="<b>机构</b>",
        project_code="P<1>&",
        change_note="<b>更正</b>",
        version=2,
    )
    await website_factory(ctx).publish(pub)

    pages = {k: v.decode() for k, v in _snapshot(_site(ctx)).items() if k.endswith(".html")}
    assert len(pages) == 11  # item, home, all/page-1, 3 lists × (index, page 1), project, map
    assert "&lt;b&gt;机构&lt;/b&gt;" in pages["sitemap.html"]  # the agency's list, by its name
    for name, page in pages.items():
        assert "<script>" not in page and "<b>" not in page, name
        # no footer settings: no placeholder lines, only the site map's link
        assert "主办单位" not in page and "网站标识码" not in page and "找错" not in page, name
        assert 'href="/sitemap.html"' in page, name
    item = pages["items/7.html"]
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>" in item
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; - " in item
    assert "a &amp; b &lt;i&gt;" in item
    assert "&lt;img src=x onerror=alert(1)&gt;" in item
    assert "&lt;b&gt;更正&lt;/b&gt;" in item
    assert 'href="/projects/P%3C1%3E%26/"' in item
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["index.html"]


@pytest.mark.parametrize("code", ["../../escape", "a/b", "..", "项目/一", "x\x00y", "%2e%2e"])
async def test_no_code_becomes_part_of_a_path(site: Ctx, make_pub: MakePub, code: str) -> None:
    ctx = site()
    await website_factory(ctx).publish(make_pub(agency_code=code, project_code=code, region=code))

    written = sorted(_snapshot(Path(ctx.data_dir)))
    assert all(p.startswith(("site/", "state/website/")) for p in written)
    stem = paths.stem("agencies", code)
    assert re.fullmatch(r"k[0-9a-f]{20}", stem)
    assert f"site/agencies/{stem}/index.html" in written
    assert f"site/projects/{paths.stem('projects', code)}/index.html" in written
    assert not any(code in p for p in written if code not in ("..",))


async def test_home_page_is_the_disclosure_column(site: Ctx, make_pub: MakePub) -> None:
    ctx = site()
    channel = website_factory(ctx)
    for n in range(1, 4):
        await channel.publish(_numbered(make_pub, n))
    await channel.publish(_numbered(make_pub, 4, domain="procurement", category="budget"))

    home = _read(ctx, "index.html")
    assert _titles(home) == ["第4号公告", "第3号公告", "第2号公告", "第1号公告"]  # newest first
    domains = re.findall(
        r'<li><a href="(/domains/\w+/)">(.*?)</a> <span class="count">（(\d+) 条）', home
    )
    assert [name for _, name, _ in domains] == [d["name"] for d in CATALOGUE.outline()]
    counts = {href: int(n) for href, _, n in domains}
    assert counts["/domains/bidding/"] == 3 and counts["/domains/procurement/"] == 1
    assert counts["/domains/housing/"] == 0
    assert 'href="/feeds/all.atom"' in home and 'href="/feeds/domains/bidding.rss"' in home
    assert '<form class="search" action="/search" method="get" role="search">' in home
    assert (
        '<link rel="alternate" type="application/atom+xml" title="全部信息（ATOM）" '
        'href="/feeds/all.atom">' in home
    )


async def test_every_page_links_its_feeds_for_autodiscovery(site: Ctx, make_pub: MakePub) -> None:
    ctx = site()
    await website_factory(ctx).publish(make_pub())

    for name, data in _snapshot(_site(ctx)).items():
        if name.endswith(".html"):
            assert b'<link rel="alternate" type="application/atom+xml"' in data, name
    item = _read(ctx, "items/7.html")
    agency = paths.feed_url("agencies", "12990100MB0000004D", "atom")
    assert f'href="{agency}"' in item
    assert 'href="/feeds/regions/500103.atom"' in item


async def test_lists_are_numbered_from_the_oldest_and_old_pages_never_change(
    site: Ctx, make_pub: MakePub
) -> None:
    ctx = site(page_size=3)
    channel = website_factory(ctx)
    for n in range(1, 8):
        await channel.publish(_numbered(make_pub, n))
    domain = _site(ctx) / "domains" / "bidding"
    assert _titles((domain / "page-1.html").read_text()) == ["第3号公告", "第2号公告", "第1号公告"]
    assert _titles((domain / "page-3.html").read_text()) == ["第7号公告"]
    assert 'rel="next" href="/domains/bidding/page-3.html"' in (domain / "page-2.html").read_text()
    index = (domain / "index.html").read_text()
    assert _titles(index)[:4] == ["第7号公告", "第6号公告", "第5号公告", "第4号公告"]
    assert 'href="/domains/bidding/page-2.html"' in index  # the way to older items
    before = _snapshot(_site(ctx))

    await channel.publish(_numbered(make_pub, 8))

    after = _snapshot(_site(ctx))
    changed = {k for k in after if before.get(k) != after[k]}
    lists = ["all/page-3.html", "domains/bidding/page-3.html", "domains/bidding/index.html"]
    for kind, code in (("agencies", "12990100MB0000004D"), ("regions", "500103")):
        lists += [
            f"{paths.list_dir(kind, code)}/page-3.html",
            f"{paths.list_dir(kind, code)}/index.html",
        ]
    project = f"{paths.list_dir('projects', 'E5000000001234567')}/index.html"
    assert changed == {"items/8.html", "index.html", project, *lists}


async def test_a_revision_updates_its_entry_where_it_is_and_keeps_the_history(
    site: Ctx, make_pub: MakePub
) -> None:
    ctx = site(page_size=3)
    channel = website_factory(ctx)
    for n in range(1, 5):
        await channel.publish(_numbered(make_pub, n))
    before = _snapshot(_site(ctx))

    revised = _numbered(
        make_pub, 2, version=2, title="第2号公告（更正）", change_note="更正第二名投标报价",
        approved_at=T0 + timedelta(days=3),
    )  # fmt: skip
    await channel.publish(revised)

    after = _snapshot(_site(ctx))
    changed = {k for k in after if before.get(k) != after[k]}
    assert "domains/bidding/page-1.html" in changed and "domains/bidding/page-2.html" not in changed
    assert _titles(_read(ctx, "domains/bidding/page-1.html")) == [
        "第3号公告", "第2号公告（更正）", "第1号公告",
    ]  # fmt: skip
    page = _read(ctx, "items/2.html")
    history = re.findall(
        r"<tr><td>(\d+)</td><td><time[^>]*>(.*?)</time></td><td>(.*?)</td></tr>", page
    )
    assert history == [("1", "2026-11-23", "首次发布"), ("2", "2026-11-26", "更正第二名投标报价")]
    assert _cells(page)["发布日期"] == "2026-11-23"  # the first publication's date


async def test_withdraw_replaces_the_page_with_a_notice_and_marks_the_lists(
    site: Ctx, make_pub: MakePub
) -> None:
    ctx = site()
    channel = website_factory(ctx)
    published = await channel.publish(make_pub())
    withdrawal = make_pub(
        version=2, action="withdraw", change_note="项目取消", changed_on=date(2026, 12, 1)
    )

    receipt = await channel.withdraw(withdrawal, published)

    assert (receipt.external_id, receipt.url) == (published.external_id, published.url)
    page = _read(ctx, "items/7.html")
    assert "<strong>本信息已撤回。</strong>" in page
    assert "<dt>撤回原因</dt><dd>项目取消</dd>" in page
    assert '<time datetime="2026-12-01">2026-12-01</time>' in page
    assert "某某建设集团有限公司" not in page and "<p>公示期三日。</p>" not in page
    assert "<td>撤回：项目取消</td>" in page
    assert _titles(_read(ctx, "index.html")) == [
        "【已撤回】某某市中心医院门诊楼改造工程中标候选人公示"
    ]
    project = _read(ctx, f"{paths.list_dir('projects', 'E5000000001234567')}/index.html")
    assert "【已撤回】" in project


async def test_publish_of_a_withdrawal_writes_the_notice(site: Ctx, make_pub: MakePub) -> None:
    """The dispatcher calls publish() for a withdrawal when nothing was published before."""
    ctx = site()

    await website_factory(ctx).publish(make_pub(action="withdraw", change_note="撤回"))

    assert "本信息已撤回" in _read(ctx, "items/7.html")


async def test_an_older_version_does_not_replace_a_newer_one(site: Ctx, make_pub: MakePub) -> None:
    ctx = site()
    channel = website_factory(ctx)
    await channel.withdraw(make_pub(version=3, action="withdraw", change_note="撤回"), Receipt())
    before = _snapshot(_site(ctx))

    receipt = await channel.publish(make_pub(version=2, title="旧版本"))

    assert receipt.confirmed_at is not None
    assert _snapshot(_site(ctx)) == before


async def test_the_project_page_shows_the_lifecycle_in_process_order(
    site: Ctx, make_pub: MakePub
) -> None:
    ctx = site()
    channel = website_factory(ctx)
    stages = [
        (3, "bid_result", "中标结果公告"),
        (1, "bid_notice", "招标公告"),
        (2, "bid_candidates", "中标候选人公示"),
    ]
    for item_id, category, title in stages:
        await channel.publish(make_pub(item_id=item_id, category=category, title=title, fields={}))

    page = _read(ctx, f"{paths.list_dir('projects', 'E5000000001234567')}/index.html")
    steps = re.findall(r"<h2>(.*?)</h2>", page)
    assert steps[:7] == ["审批核准备案信息", "招标公告", "资格审查结果", "开标记录", "中标候选人",
                         "中标结果", "合同订立及履行"]  # fmt: skip
    assert _titles(page) == ["招标公告", "中标候选人公示", "中标结果公告"]
    assert '<h1>项目 <span class="code">E5000000001234567</span></h1>' in page


async def test_publishing_twice_writes_identical_bytes_and_no_state_is_public(
    site: Ctx, make_pub: MakePub
) -> None:
    ctx = site()
    channel = website_factory(ctx)
    await channel.publish(make_pub())
    before = _snapshot(_site(ctx))

    await channel.publish(make_pub())

    assert _snapshot(_site(ctx)) == before
    names = list(before)
    assert not any(n.endswith((".json", ".lock", ".tmp")) or "/." in n for n in names), names
    assert (_site(ctx) / "items" / "7.html").stat().st_mode & 0o777 == 0o644


async def test_rebuild_gives_the_same_site_as_publishing_one_by_one(
    site: Ctx, make_pub: MakePub, tmp_path: Path
) -> None:
    pubs = [_numbered(make_pub, n, project_code=f"P{n % 3}") for n in range(1, 12)]
    pubs.append(_numbered(make_pub, 4, version=2, title="改", change_note="更正"))
    pubs.append(_numbered(make_pub, 5, version=2, action="withdraw", change_note="撤回"))
    one_by_one = site(page_size=4)
    channel = website_factory(one_by_one)
    for pub in pubs:
        await (
            channel.withdraw(pub, Receipt()) if pub.action == "withdraw" else channel.publish(pub)
        )
    rebuilt = site(page_size=4, data_dir=tmp_path / "other")
    stale = _site(rebuilt) / "items" / "999.html"
    stale.parent.mkdir(parents=True)
    stale.write_text("stale")
    (_site(rebuilt) / "feeds").mkdir()
    (_site(rebuilt) / "feeds" / "all.atom").write_text("kept")

    assert website_factory(rebuilt).rebuild(iter(pubs)) == len(pubs)

    expected = _snapshot(_site(one_by_one))
    assert _snapshot(_site(rebuilt)) == {**expected, "feeds/all.atom": b"kept"}


async def test_a_crash_between_pages_and_state_is_repaired_by_the_retry(
    site: Ctx, make_pub: MakePub
) -> None:
    """Pages are written before the state: a retry of the same delivery rewrites them all."""
    ctx = site()
    channel = website_factory(ctx)
    await channel.publish(_numbered(make_pub, 1))
    state = Path(ctx.data_dir) / "state" / "website"
    shutil.rmtree(state / "lists")  # as if the state of the second publish were never written
    os.unlink(state / "items" / "1.json")

    await channel.publish(_numbered(make_pub, 1))

    assert _titles(_read(ctx, "index.html")) == ["第1号公告"]
    assert _titles(_read(ctx, "domains/bidding/page-1.html")) == ["第1号公告"]


@pytest.mark.parametrize("bad_id", [0, -1, True])
async def test_item_ids_must_be_positive_ints(site: Ctx, make_pub: MakePub, bad_id: int) -> None:
    with pytest.raises(PermanentError):
        await website_factory(site()).publish(make_pub(item_id=bad_id))


async def test_a_data_dir_under_a_regular_file_is_permanent(
    context: Ctx, make_pub: MakePub, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    channel = website_factory(context(data_dir=blocker / "var"))

    with pytest.raises(PermanentError, match="Not a directory"):
        await channel.publish(make_pub())


async def test_unreadable_state_is_permanent(site: Ctx, make_pub: MakePub) -> None:
    ctx = site()
    channel = website_factory(ctx)
    await channel.publish(make_pub())
    (Path(ctx.data_dir) / "state" / "website" / "items" / "7.json").write_text("{broken")

    with pytest.raises(PermanentError, match=r"7\.json.*`gongkai site rebuild`"):
        await channel.publish(make_pub(version=2))
    state = Path(ctx.data_dir) / "state"
    assert list(broken_states(state)) == ["website"]  # for /readyz and /metrics

    channel.rebuild([make_pub()])  # what `gongkai site rebuild` does, from the database
    assert broken_states(state) == {}
    await channel.publish(make_pub(version=2))


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.ENOSPC, RetryableError),
        (errno.EDQUOT, RetryableError),
        (errno.EIO, RetryableError),
        (errno.EAGAIN, RetryableError),
        (errno.EMFILE, RetryableError),
        (errno.EACCES, PermanentError),
        (errno.EPERM, PermanentError),
        (errno.EROFS, PermanentError),
        (errno.ENOTDIR, PermanentError),
        (errno.EEXIST, PermanentError),
        (errno.EXDEV, RetryableError),  # not listed: retried, the dispatcher bounds the tries
    ],
)
def test_map_errors(code: int, expected: type[Exception]) -> None:
    with pytest.raises(expected) as caught, map_errors("website items/1.html"):
        raise OSError(code, "boom")

    assert type(caught.value) is expected
    assert str(caught.value).startswith("website items/1.html: ")


def test_factory_needs_a_base_url_and_templates(context: Ctx, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="base_url"):
        website_factory(context(base_url=""))
    with pytest.raises(ValueError, match="templates"):
        website_factory(context(templates_dir=str(tmp_path)))


async def test_templates_dir_setting_is_used(site: Ctx, make_pub: MakePub, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, templates)
    (templates / "item.html").write_text("<p>{{ title }} v{{ version }}</p>")
    ctx = site(templates_dir=str(templates))

    await website_factory(ctx).publish(make_pub(title="<x>"))

    assert _read(ctx, "items/7.html") == "<p>&lt;x&gt; v1</p>"


class _CountingSite(WebsiteChannel):
    """Records the size of each group written (the channel's own hook point, not a library)."""

    groups: list[int]

    def _apply(self, pubs: Sequence[tuple[Publication, bool]], durable: bool) -> list[datetime]:
        self.groups.append(len(pubs))
        return super()._apply(pubs, durable)


def _counting(ctx: ChannelContext) -> _CountingSite:
    plain = website_factory(ctx)
    site = _CountingSite(
        Path(ctx.data_dir), plain.base_url, plain.templates_dir, plain.site_title, plain.domains
    )
    site.groups = []
    return site


async def test_a_burst_is_written_in_groups_and_every_item_is_listed_once(
    site: Ctx, make_pub: MakePub
) -> None:
    ctx = site()
    channel = _counting(ctx)

    receipts = await asyncio.gather(
        *(channel.publish(_numbered(make_pub, n)) for n in range(1, 31))
    )

    assert sum(channel.groups) == 30 and max(channel.groups) > 1  # one write carried several
    times = [r.confirmed_at for r in receipts]
    assert len(set(times)) == 30  # distinct: the order the lists were appended in
    listed = _titles(_read(ctx, "all/page-1.html")) + _titles(_read(ctx, "all/page-2.html"))
    assert sorted(listed) == sorted(f"第{n}号公告" for n in range(1, 31))
    by_time = sorted(receipts, key=lambda r: r.confirmed_at or T0)
    order = [
        f"第{r.external_id.split('/')[1].split('.')[0]}号公告" for r in by_time if r.external_id
    ]
    assert _titles(_read(ctx, "all/page-1.html"))[::-1] == order[:20]  # oldest first


async def test_one_bad_item_in_a_group_fails_alone(site: Ctx, make_pub: MakePub) -> None:
    ctx = site()
    channel = _counting(ctx)
    await channel.publish(_numbered(make_pub, 1))
    (Path(ctx.data_dir) / "state" / "website" / "items" / "1.json").write_text("{broken")

    results = await asyncio.gather(
        channel.publish(_numbered(make_pub, 1, version=2)),
        *(channel.publish(_numbered(make_pub, n)) for n in range(2, 6)),
        return_exceptions=True,
    )

    assert isinstance(results[0], PermanentError) and "1.json" in str(results[0])
    assert all(isinstance(r, Receipt) and r.confirmed_at for r in results[1:])
    assert sorted(_titles(_read(ctx, "index.html"))) == sorted(f"第{n}号公告" for n in range(1, 6))
