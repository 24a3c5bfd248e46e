"""The feeds channel keeps one Atom and one RSS entry per item, newest first, written atomically."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import feedparser
import pytest

from channels.base import Channel, ChannelContext, PermanentError, Publication, Receipt
from channels.feeds import feeds_factory

BASE_URL = "https://gk.example.gov.cn"
Ctx = Callable[..., ChannelContext]
MakePub = Callable[..., Publication]


def _feeds_dir(ctx: ChannelContext) -> Path:
    return Path(ctx.data_dir) / "site" / "feeds"


def _parse(ctx: ChannelContext, name: str) -> Any:
    parsed = feedparser.parse((_feeds_dir(ctx) / name).read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


def _both(ctx: ChannelContext) -> tuple[Any, Any]:
    return _parse(ctx, "all.atom"), _parse(ctx, "all.rss")


def _entry_id(item_id: int) -> str:
    return f"tag:gk.example.gov.cn,2026:item:{item_id}"


async def test_publish_writes_both_feeds(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds", title="示范市政府信息公开")
    channel = feeds_factory(ctx)
    assert isinstance(channel, Channel)

    receipt = await channel.publish(make_pub())

    assert receipt.external_id == _entry_id(7)
    assert receipt.url == f"{BASE_URL}/feeds/all.atom"
    assert receipt.confirmed_at is not None
    atom, rss = _both(ctx)
    assert atom.version == "atom10"
    assert rss.version == "rss20"
    for feed in (atom, rss):
        assert feed.feed.title == "示范市政府信息公开"
        assert feed.feed.link == f"{BASE_URL}/"
        assert feed.feed.language == "zh-CN"
        [entry] = feed.entries
        assert entry.id == _entry_id(7)
        assert entry.title == "某某市中心医院门诊楼改造工程中标候选人公示"
        assert entry.link == f"{BASE_URL}/items/7.html"
        assert "评标委员会推荐的中标候选人及排序" in entry.content[0].value
    atom_self = [link.href for link in atom.feed.links if link.rel == "self"]
    rss_self = [link.href for link in rss.feed.links if link.rel == "self"]
    assert atom_self == [f"{BASE_URL}/feeds/all.atom"]
    assert rss_self == [f"{BASE_URL}/feeds/all.rss"]


async def test_feeds_hold_the_newest_fifty(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds")
    channel = feeds_factory(ctx)
    for item_id in range(1, 61):
        await channel.publish(make_pub(item_id=item_id, title=f"第{item_id}号"))

    expected = [_entry_id(i) for i in range(60, 10, -1)]
    for feed in _both(ctx):
        assert [e.id for e in feed.entries] == expected
    state = json.loads((_feeds_dir(ctx) / "all.json").read_text("utf-8"))
    assert len(state) == 60  # every item is remembered, so late old versions are recognised


async def test_publishing_twice_changes_nothing(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds")
    channel = feeds_factory(ctx)
    await channel.publish(make_pub())
    files = {p.name: p.read_bytes() for p in _feeds_dir(ctx).iterdir()}

    receipt = await channel.publish(make_pub())

    assert receipt.external_id == _entry_id(7)
    assert {p.name: p.read_bytes() for p in _feeds_dir(ctx).iterdir()} == files
    assert sorted(files) == [".lock", "all.atom", "all.json", "all.rss"]  # no temp files


async def test_a_revision_updates_the_same_entry(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds")
    channel = feeds_factory(ctx)
    await channel.publish(make_pub())
    [before] = _parse(ctx, "all.atom").entries

    await channel.publish(make_pub(version=2, title="更正后的标题", change_note="更正第二名报价"))

    atom, rss = _both(ctx)
    [entry] = atom.entries
    assert entry.id == before.id
    assert entry.title == "更正后的标题"
    assert entry.updated_parsed >= before.updated_parsed
    assert entry.updated > before.updated  # ISO 8601 in UTC: compares as text
    assert entry.published == before.published
    assert "变更说明：更正第二名报价" in entry.content[0].value
    [item] = rss.entries
    assert (item.id, item.title) == (before.id, "更正后的标题")


async def test_an_older_version_does_not_overwrite_a_newer_one(
    context: Ctx, make_pub: MakePub
) -> None:
    ctx = context(name="feeds")
    channel = feeds_factory(ctx)
    await channel.publish(make_pub(version=3, title="第三版"))
    before = (_feeds_dir(ctx) / "all.atom").read_bytes()

    receipt = await channel.publish(make_pub(version=2, title="第二版"))

    assert receipt.confirmed_at is not None
    assert (_feeds_dir(ctx) / "all.atom").read_bytes() == before
    assert [e.title for e in _parse(ctx, "all.atom").entries] == ["第三版"]


async def test_withdraw_marks_the_entry(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds")
    channel = feeds_factory(ctx)
    published = await channel.publish(make_pub())
    await channel.publish(make_pub(item_id=8, title="另一条"))

    receipt = await channel.withdraw(
        make_pub(version=2, action="withdraw", change_note="项目取消"), published
    )

    assert receipt.external_id == published.external_id
    assert receipt.confirmed_at is not None
    for feed in _both(ctx):
        assert [e.id for e in feed.entries] == [_entry_id(7), _entry_id(8)]  # newest first
        withdrawn = feed.entries[0]
        assert withdrawn.title == "【已撤回】某某市中心医院门诊楼改造工程中标候选人公示"
        assert "撤回原因：项目取消" in withdrawn.content[0].value
        assert "评标委员会" not in withdrawn.content[0].value

    await channel.publish(make_pub(version=1))  # a late copy of the withdrawn version
    assert _parse(ctx, "all.atom").entries[0].title.startswith("【已撤回】")


async def test_publish_of_a_withdrawal_marks_the_entry(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds")

    await feeds_factory(ctx).publish(make_pub(action="withdraw", change_note="撤回"))

    assert _parse(ctx, "all.atom").entries[0].title.startswith("【已撤回】")


async def test_user_text_is_escaped_in_the_feed(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds")

    await feeds_factory(ctx).publish(
        make_pub(title="<script>alert(1)</script>", summary="<b>x</b>", change_note="a & b")
    )

    raw = (_feeds_dir(ctx) / "all.atom").read_text("utf-8")
    assert "<script>" not in raw
    [entry] = _parse(ctx, "all.atom").entries
    assert entry.title == "<script>alert(1)</script>"
    assert "&lt;b&gt;x&lt;/b&gt;" in entry.content[0].value
    assert "a &amp; b" in entry.content[0].value


async def test_concurrent_publishes_lose_no_entry(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds")
    first, second = feeds_factory(ctx), feeds_factory(ctx)

    receipts = await asyncio.gather(
        *((first if i % 2 else second).publish(make_pub(item_id=i)) for i in range(1, 21))
    )

    assert all(r.confirmed_at is not None for r in receipts)
    for feed in _both(ctx):
        assert sorted(e.id for e in feed.entries) == sorted(_entry_id(i) for i in range(1, 21))


async def test_an_unreadable_state_is_permanent(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds")
    _feeds_dir(ctx).mkdir(parents=True)
    (_feeds_dir(ctx) / "all.json").write_text("{not json")

    with pytest.raises(PermanentError, match="unreadable"):
        await feeds_factory(ctx).publish(make_pub())


async def test_a_data_dir_under_a_regular_file_is_permanent(
    context: Ctx, make_pub: MakePub, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")

    with pytest.raises(PermanentError):
        await feeds_factory(context(name="feeds", data_dir=blocker)).withdraw(
            make_pub(action="withdraw"), Receipt()
        )


def test_factory_needs_a_base_url(context: Ctx) -> None:
    with pytest.raises(ValueError, match="base_url"):
        feeds_factory(context(name="feeds", base_url="gk.example.gov.cn"))
