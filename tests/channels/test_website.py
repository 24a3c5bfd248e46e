"""The website channel writes item pages atomically; a withdrawal replaces one with a notice."""

from __future__ import annotations

import errno
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from channels.base import (
    Channel,
    ChannelContext,
    PermanentError,
    Publication,
    Receipt,
    RetryableError,
)
from channels.files import map_errors
from channels.website import field_tables, website_factory

BASE_URL = "https://gk.example.gov.cn"
Ctx = Callable[..., ChannelContext]
MakePub = Callable[..., Publication]


def _page(ctx: ChannelContext, item_id: int = 7) -> str:
    return (Path(ctx.data_dir) / "site" / "items" / f"{item_id}.html").read_text("utf-8")


def _cells(page: str) -> dict[str, str]:
    return dict(re.findall(r'<tr><th scope="row">(.*?)</th><td>(.*?)</td></tr>', page))


async def test_publish_writes_the_item_page_with_its_catalogue_metadata(
    context: Ctx, make_pub: MakePub
) -> None:
    ctx = context()
    channel = website_factory(ctx)
    assert isinstance(channel, Channel)
    before = datetime.now(UTC)

    receipt = await channel.publish(make_pub())

    assert receipt.external_id == "items/7.html"
    assert receipt.url == f"{BASE_URL}/items/7.html"
    assert receipt.confirmed_at is not None and receipt.confirmed_at >= before
    assert not receipt.pending
    page = _page(ctx)
    assert page.startswith('<!doctype html>\n<html lang="zh-CN">')
    assert "<h1>某某市中心医院门诊楼改造工程中标候选人公示</h1>" in page
    assert _cells(page) == {
        "索引号": "12990100MB0000004D/2026-00007",
        "主题分类": "bidding / bid_candidates",
        "发布机构": "示范市公共资源交易中心",
        "成文日期": "2026-11-20",
        "发布日期": "2026-11-24",
        "文号": "示公资〔2026〕12号",
        "主题词": "招标投标；中标候选人",
        "有效性": "有效",
    }
    assert "<p>评标委员会推荐的中标候选人及排序</p>" in page
    assert "<p>公示期三日。</p>" in page  # sanitized at intake: inserted as HTML
    assert "依法不予公开（个人隐私）: fields.candidates[0].project_lead_phone" in page
    assert "变更说明" not in page


async def test_fields_render_as_tables(context: Ctx, make_pub: MakePub) -> None:
    ctx = context()
    await website_factory(ctx).publish(make_pub())

    page = _page(ctx)
    header = re.search(r"<caption>candidates</caption>\s*<thead>\s*<tr>(.*?)</tr>", page)
    assert header is not None
    assert re.findall(r"<th scope=\"col\">(.*?)</th>", header[1]) == [
        "rank", "name", "bid_price", "project_lead", "project_lead_phone",
    ]  # fmt: skip
    assert (
        "<tr><td>1</td><td>某某建设集团有限公司</td><td>12345678.00</td><td>张某</td><td></td></tr>"
        in page
    )
    assert "<tr><td>duration_days</td><td>180</td></tr>" in page


def test_field_tables_put_scalars_first_and_fall_back_to_json_for_nesting() -> None:
    tables = field_tables(
        {"rows": [{"a": 1}, {"b": None}], "flag": True, "tags": ["x", "y"], "nested": {"k": [1]}}
    )

    assert tables[0].caption is None
    assert tables[0].rows == (("flag", "是"), ("tags", "x；y"), ("nested", '{"k": [1]}'))
    assert tables[1].caption == "rows"
    assert tables[1].columns == ("a", "b")
    assert tables[1].rows == (("1", ""), ("", ""))


@pytest.mark.parametrize(("validity", "shown"), [("repealed", "废止"), ("expired", "失效")])
async def test_validity_is_shown_in_chinese(
    context: Ctx, make_pub: MakePub, validity: str, shown: str
) -> None:
    ctx = context()
    await website_factory(ctx).publish(make_pub(validity=validity))

    assert _cells(_page(ctx))["有效性"] == shown


async def test_user_text_is_escaped(context: Ctx, make_pub: MakePub) -> None:
    ctx = context()
    pub = make_pub(
        title="<script>alert(1)</script>",
        summary="a & b <i>",
        fields={"note": "<img src=x onerror=alert(1)>"},
        change_note="<b>更正</b>",
    )
    await website_factory(ctx).publish(pub)

    page = _page(ctx)
    assert "<script>" not in page
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>" in page
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; - " in page
    assert "a &amp; b &lt;i&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;b&gt;更正&lt;/b&gt;" in page


async def test_change_note_is_shown(context: Ctx, make_pub: MakePub) -> None:
    ctx = context()
    await website_factory(ctx).publish(make_pub(version=2, change_note="更正第二名投标报价"))

    assert "<h2>变更说明</h2>\n<p>更正第二名投标报价</p>" in _page(ctx)


async def test_publishing_twice_writes_identical_bytes_and_leaves_no_temp_files(
    context: Ctx, make_pub: MakePub
) -> None:
    ctx = context()
    channel = website_factory(ctx)
    first = await channel.publish(make_pub())
    content = _page(ctx)

    second = await channel.publish(make_pub())

    assert _page(ctx) == content
    assert (first.external_id, first.url) == (second.external_id, second.url)
    items = Path(ctx.data_dir) / "site" / "items"
    assert sorted(p.name for p in items.iterdir()) == [".lock", "7.html"]
    assert (items / "7.html").stat().st_mode & 0o777 == 0o644


async def test_withdraw_replaces_the_page_with_a_notice(context: Ctx, make_pub: MakePub) -> None:
    ctx = context()
    channel = website_factory(ctx)
    published = await channel.publish(make_pub())
    withdrawal = make_pub(
        version=2,
        action="withdraw",
        change_note="项目取消",
        changed_on=datetime(2026, 12, 1).date(),
    )

    receipt = await channel.withdraw(withdrawal, published)

    assert (receipt.external_id, receipt.url) == (published.external_id, published.url)
    assert receipt.confirmed_at is not None
    page = _page(ctx)
    assert "本信息已撤回" in page
    assert "<dt>撤回原因</dt><dd>项目取消</dd>" in page
    assert '<time datetime="2026-12-01">2026-12-01</time>' in page
    assert "某某建设集团有限公司" not in page
    assert "<p>公示期三日。</p>" not in page


async def test_publish_of_a_withdrawal_writes_the_notice(context: Ctx, make_pub: MakePub) -> None:
    """The dispatcher calls publish() for a withdrawal when nothing was published before."""
    ctx = context()

    await website_factory(ctx).publish(make_pub(action="withdraw", change_note="撤回"))

    assert "本信息已撤回" in _page(ctx)


async def test_an_older_version_does_not_replace_a_newer_page(
    context: Ctx, make_pub: MakePub
) -> None:
    ctx = context()
    channel = website_factory(ctx)
    await channel.withdraw(make_pub(version=3, action="withdraw", change_note="撤回"), Receipt())

    receipt = await channel.publish(make_pub(version=2))

    assert receipt.confirmed_at is not None
    assert "本信息已撤回" in _page(ctx)


@pytest.mark.parametrize("bad_id", [0, -1, True])
async def test_item_ids_must_be_positive_ints(context: Ctx, make_pub: MakePub, bad_id: int) -> None:
    with pytest.raises(PermanentError):
        await website_factory(context()).publish(make_pub(item_id=bad_id))


async def test_a_data_dir_under_a_regular_file_is_permanent(
    context: Ctx, make_pub: MakePub, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    channel = website_factory(context(data_dir=blocker / "var"))

    with pytest.raises(PermanentError, match="Not a directory"):
        await channel.publish(make_pub())


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


async def test_templates_dir_setting_is_used(
    context: Ctx, make_pub: MakePub, tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "item.html").write_text("<p>{{ title }} v{{ version }}</p>")
    (templates / "withdrawn.html").write_text("<p>gone</p>")
    ctx = context(templates_dir=str(templates))

    await website_factory(ctx).publish(make_pub(title="<x>"))

    assert _page(ctx) == "<p>&lt;x&gt; v1</p>"
