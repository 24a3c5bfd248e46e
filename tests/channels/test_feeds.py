"""The feeds channel keeps Atom and RSS feeds (all, per domain, agency, region), newest first."""

from __future__ import annotations

import asyncio
import html
import json
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import feedparser
import pytest

from channels import paths
from channels.base import Channel, ChannelContext, PermanentError, Receipt
from channels.feeds import FeedsChannel, feeds_factory
from tests.channels.conftest import BASE_URL, FEEDS, Ctx, MakePub

TITLE = "示范市政府信息公开"


def _site(ctx: ChannelContext) -> Path:
    return Path(ctx.data_dir) / "site"


def _state(ctx: ChannelContext) -> Path:
    return Path(ctx.data_dir) / "state" / "feeds"


def _parse(ctx: ChannelContext, kind: str | None, code: str | None, fmt: str = "atom") -> Any:
    parsed = feedparser.parse((_site(ctx) / paths.feed_file(kind, code, fmt)).read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


def _both(ctx: ChannelContext, kind: str | None = None, code: str | None = None) -> list[Any]:
    return [_parse(ctx, kind, code, "atom"), _parse(ctx, kind, code, "rss")]


def _ids(ctx: ChannelContext, kind: str | None, code: str | None) -> list[str]:
    atom, rss = _both(ctx, kind, code)
    assert [e.id for e in atom.entries] == [e.id for e in rss.entries]
    return [e.id for e in atom.entries]


def _entry_id(item_id: int) -> str:
    return f"tag:gk.example.gov.cn,2026:item:{item_id}"


def _channel(context: Ctx, **settings: Any) -> FeedsChannel:
    settings.setdefault("feeds_window", 0)  # one flush per call: the burst tests set a window
    return feeds_factory(context(name="feeds", **settings))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def test_publish_writes_both_feeds(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds", title=TITLE, feeds_window=0)
    channel = feeds_factory(ctx)
    assert isinstance(channel, Channel)

    receipt = await channel.publish(make_pub(domain_name="招标投标", category_name="中标候选人"))

    assert receipt.external_id == _entry_id(7)
    assert receipt.url == f"{BASE_URL}/feeds/all.atom"
    assert receipt.confirmed_at is not None
    atom, rss = _both(ctx)
    assert atom.version == "atom10"
    assert rss.version == "rss20"
    for feed in (atom, rss):
        assert feed.feed.title == TITLE
        assert feed.feed.link == f"{BASE_URL}/"
        assert feed.feed.language == "zh-CN"
        [entry] = feed.entries
        assert entry.id == _entry_id(7)
        assert entry.title == "某某市中心医院门诊楼改造工程中标候选人公示"
        assert entry.link == f"{BASE_URL}/items/7.html"
        assert entry.author == "示范市公共资源交易中心"
        assert [t.term for t in entry.tags] == ["招标投标 / 中标候选人"]
        assert "评标委员会推荐的中标候选人及排序" in entry.content[0].value
    atom_self = [link.href for link in atom.feed.links if link.rel == "self"]
    rss_self = [link.href for link in rss.feed.links if link.rel == "self"]
    assert atom_self == [f"{BASE_URL}/feeds/all.atom"]
    assert rss_self == [f"{BASE_URL}/feeds/all.rss"]


async def test_each_item_is_in_its_domain_agency_and_region_feeds(
    context: Ctx, make_pub: MakePub
) -> None:
    ctx = context(name="feeds", title=TITLE, feeds_window=0)
    channel = feeds_factory(ctx)
    await channel.publish(make_pub(item_id=1, domain_name="招标投标"))
    await channel.publish(
        make_pub(item_id=2, domain="procurement", domain_name="政府采购", category="award",
                 agency_code="11500000MB1111111A", agency_name="示范市财政局", region="500104")
    )  # fmt: skip

    expected = {
        (None, None): ([2, 1], TITLE),
        ("domains", "bidding"): ([1], f"{TITLE} - 招标投标"),
        ("domains", "procurement"): ([2], f"{TITLE} - 政府采购"),
        ("agencies", "12990100MB0000004D"): ([1], "示范市公共资源交易中心"),
        ("agencies", "11500000MB1111111A"): ([2], "示范市财政局"),
        ("regions", "500103"): ([1], "行政区划 500103"),
        ("regions", "500104"): ([2], "行政区划 500104"),
    }
    for (kind, code), (items, title) in expected.items():
        assert _ids(ctx, kind, code) == [_entry_id(i) for i in items], (kind, code)
        for fmt, feed in zip(("atom", "rss"), _both(ctx, kind, code), strict=True):
            assert feed.feed.title == title
            self_links = [link.href for link in feed.feed.links if link.rel == "self"]
            assert self_links == [BASE_URL + paths.feed_url(kind, code, fmt)]
            if kind is not None:
                assert feed.feed.link == BASE_URL + paths.list_url(kind, code)
    # no user text in a file name: agency and region codes are digested
    names = {p.name for p in _site(ctx).rglob("*")} | {p.name for p in _state(ctx).rglob("*")}
    assert not any("12990100MB0000004D" in n or "500103" in n for n in names)


async def test_feeds_hold_the_newest_fifty_and_the_state_stays_small(
    context: Ctx, make_pub: MakePub
) -> None:
    ctx = context(name="feeds", feeds_window=0)
    channel = feeds_factory(ctx)
    for item_id in range(1, 61):
        await channel.publish(make_pub(item_id=item_id, title=f"第{item_id}号"))

    expected = [_entry_id(i) for i in range(60, 10, -1)]
    for kind, code in FEEDS:
        assert _ids(ctx, kind, code) == expected
    # the state is outside the public site, and each feed keeps only what it shows
    assert not list(_site(ctx).rglob("*.json"))
    for kind, code in FEEDS:
        name = Path(paths.feed_file(kind, code, "atom")).relative_to("feeds").with_suffix(".json")
        state = json.loads((_state(ctx) / name).read_text("utf-8"))
        assert len(state["entries"]) == 50
    items = sorted(_state(ctx).glob("items/*.json"))
    assert len(items) == 60  # every item is remembered, so late old versions are recognised
    assert max(p.stat().st_size for p in items) < 400
    assert json.loads((_state(ctx) / "items" / "1.json").read_text())["version"] == 1


async def test_publishing_twice_changes_nothing(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds", feeds_window=0)
    channel = feeds_factory(ctx)
    await channel.publish(make_pub())
    site, state = _files(_site(ctx)), _files(_state(ctx))

    receipt = await channel.publish(make_pub())

    assert receipt.external_id == _entry_id(7)
    assert receipt.confirmed_at is not None
    assert _files(_site(ctx)) == site
    assert _files(_state(ctx)) == state
    assert sorted(site) == sorted(paths.feed_file(k, c, f)
                                  for k, c in FEEDS for f in ("atom", "rss"))  # fmt: skip
    assert not [name for name in state if name.endswith(".tmp")]


async def test_a_stale_feed_file_is_repaired_by_a_retry(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds", feeds_window=0)
    channel = feeds_factory(ctx)
    await channel.publish(make_pub())
    atom = _site(ctx) / paths.feed_file("regions", "500103", "atom")
    written = atom.read_bytes()
    atom.write_bytes(b"<feed/>")  # as if the process died before the rename

    await channel.publish(make_pub())

    assert atom.read_bytes() == written


async def test_a_revision_updates_the_same_entry(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds", feeds_window=0)
    channel = feeds_factory(ctx)
    await channel.publish(make_pub())
    [before] = _parse(ctx, None, None).entries

    await channel.publish(make_pub(version=2, title="更正后的标题", change_note="更正第二名报价"))

    for kind, code in FEEDS:
        atom, rss = _both(ctx, kind, code)
        [entry] = atom.entries
        assert entry.id == before.id
        assert entry.title == "更正后的标题"
        assert entry.updated > before.updated  # ISO 8601 in UTC: compares as text
        assert entry.published == before.published
        assert "变更说明：更正第二名报价" in entry.content[0].value
        [item] = rss.entries
        assert (item.id, item.title) == (before.id, "更正后的标题")


async def test_a_revision_that_moves_the_item_leaves_the_old_feeds(
    context: Ctx, make_pub: MakePub
) -> None:
    ctx = context(name="feeds", feeds_window=0)
    channel = feeds_factory(ctx)
    await channel.publish(make_pub(item_id=7))
    await channel.publish(make_pub(item_id=8))

    await channel.publish(make_pub(item_id=7, version=2, region="500104"))

    assert _ids(ctx, "regions", "500103") == [_entry_id(8)]
    assert _ids(ctx, "regions", "500104") == [_entry_id(7)]
    assert _ids(ctx, None, None) == [_entry_id(7), _entry_id(8)]


async def test_an_older_version_does_not_overwrite_a_newer_one(
    context: Ctx, make_pub: MakePub
) -> None:
    ctx = context(name="feeds", feeds_window=0)
    channel = feeds_factory(ctx)
    await channel.publish(make_pub(version=3, title="第三版"))
    before = _files(_site(ctx))

    receipt = await channel.publish(make_pub(version=2, title="第二版"))

    assert receipt.confirmed_at is not None
    assert _files(_site(ctx)) == before
    assert [e.title for e in _parse(ctx, None, None).entries] == ["第三版"]


async def test_an_older_version_is_recognised_after_its_entry_aged_out(
    context: Ctx, make_pub: MakePub
) -> None:
    ctx = context(name="feeds", feeds_window=0)
    channel = feeds_factory(ctx)
    channel.limit = 3  # small feeds: the entry ages out after three more items
    await channel.publish(make_pub(item_id=1, version=3, title="第三版"))
    for item_id in (2, 3, 4):
        await channel.publish(make_pub(item_id=item_id))
    before = _files(_site(ctx))
    published = json.loads((_state(ctx) / "items" / "1.json").read_text())["published"]

    receipt = await channel.publish(make_pub(item_id=1, version=2, title="第二版"))

    assert receipt.confirmed_at is not None
    assert _files(_site(ctx)) == before  # the late, older version did not come back

    await channel.publish(make_pub(item_id=1, version=4, title="第四版"))
    [entry, *_] = _parse(ctx, None, None).entries
    assert (entry.id, entry.title) == (_entry_id(1), "第四版")
    assert entry.published == published  # kept from the first version


async def test_withdraw_marks_the_entry(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds", feeds_window=0)
    channel = feeds_factory(ctx)
    published = await channel.publish(make_pub())
    await channel.publish(make_pub(item_id=8, title="另一条"))

    receipt = await channel.withdraw(
        make_pub(version=2, action="withdraw", change_note="项目取消"), published
    )

    assert receipt.external_id == published.external_id
    assert receipt.confirmed_at is not None
    for kind, code in FEEDS:
        for feed in _both(ctx, kind, code):
            assert [e.id for e in feed.entries] == [_entry_id(7), _entry_id(8)]  # newest first
            withdrawn = feed.entries[0]
            assert withdrawn.title == "【已撤回】某某市中心医院门诊楼改造工程中标候选人公示"
            assert "撤回原因：项目取消" in withdrawn.content[0].value
            assert "评标委员会" not in withdrawn.content[0].value

    await channel.publish(make_pub(version=1))  # a late copy of the withdrawn version
    assert _parse(ctx, None, None).entries[0].title.startswith("【已撤回】")


async def test_a_withdrawal_of_the_same_version_supersedes_it(
    context: Ctx, make_pub: MakePub
) -> None:
    ctx = context(name="feeds", feeds_window=0)
    channel = feeds_factory(ctx)
    await channel.publish(make_pub())

    await channel.publish(make_pub(action="withdraw", change_note="撤回"))

    assert _parse(ctx, "regions", "500103").entries[0].title.startswith("【已撤回】")


async def test_user_text_is_escaped_in_the_feed(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds", feeds_window=0)

    await feeds_factory(ctx).publish(
        make_pub(title="<script>alert(1)</script> & 公告\x0b", summary="<b>x</b>",
                 change_note="a & b", agency_name="<i>局</i> & 中心")
    )  # fmt: skip

    for fmt in ("atom", "rss"):
        raw = (_site(ctx) / paths.feed_file(None, None, fmt)).read_text("utf-8")
        assert "<script>" not in raw
        assert "<i>" not in raw
        [entry] = _parse(ctx, None, None, fmt).entries
        assert entry.title == "<script>alert(1)</script> & 公告"  # the control character dropped
        assert "&lt;b&gt;x&lt;/b&gt;" in entry.content[0].value
        assert "a &amp; b" in entry.content[0].value
    assert _parse(ctx, "agencies", "12990100MB0000004D").feed.title == "<i>局</i> & 中心"


async def test_concurrent_publishes_lose_no_entry(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds", feeds_window=0)
    first, second = feeds_factory(ctx), feeds_factory(ctx)

    receipts = await asyncio.gather(
        *((first if i % 2 else second).publish(make_pub(item_id=i)) for i in range(1, 21))
    )

    assert all(r.confirmed_at is not None for r in receipts)
    for kind, code in FEEDS:
        assert sorted(_ids(ctx, kind, code)) == sorted(_entry_id(i) for i in range(1, 21))


class CountingChannel(FeedsChannel):
    """Counts each feed file it replaces (the writes happen in the flush's thread)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes: Counter[str] = Counter()
        self._lock = threading.Lock()

    def write_feed(self, path: Path, data: bytes) -> None:
        with self._lock:
            self.writes[str(path.relative_to(self.site_dir))] += 1
        super().write_feed(path, data)


async def test_a_summary_with_markup_is_text_to_every_feed_reader(
    context: Ctx, make_pub: MakePub
) -> None:
    """RSS readers take <description> as HTML: a summary's markup must arrive escaped as HTML,
    so it is shown, never run (the probe found an <img onerror> live in every RSS reader)."""
    ctx = context(name="feeds", feeds_window=0)
    attack = "<img src=x onerror=alert(1)>"
    await feeds_factory(ctx).publish(make_pub(summary=attack))
    rss = ET.fromstring((_site(ctx) / paths.feed_file(None, None, "rss")).read_bytes())  # noqa: S314
    [description] = [e.text for e in rss.iter("description") if e.text and "img" in e.text]
    assert description == html.escape(attack)  # the HTML a reader renders: text, not an image
    atom = ET.fromstring((_site(ctx) / paths.feed_file(None, None, "atom")).read_bytes())  # noqa: S314
    [summary] = atom.iter("{http://www.w3.org/2005/Atom}summary")
    assert summary.get("type") == "html" and summary.text == html.escape(attack)


def _counting(ctx: ChannelContext) -> CountingChannel:
    plain = feeds_factory(ctx)
    return CountingChannel(
        plain.site, plain.site_dir, plain.state_dir, window=plain.window, hub=plain.hub
    )


async def test_a_burst_rewrites_each_feed_once_per_window(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds")  # the default window
    channel = _counting(ctx)
    assert channel.window == 0.2

    receipts = await asyncio.gather(
        *(channel.publish(make_pub(item_id=i, agency_code=f"A{i % 4}")) for i in range(1, 41))
    )

    assert all(r.confirmed_at is not None for r in receipts)
    assert [r.external_id for r in receipts] == [_entry_id(i) for i in range(1, 41)]
    assert channel.writes[paths.feed_file(None, None, "atom")] <= 2  # 40 without coalescing
    assert max(channel.writes.values()) <= 2
    assert sorted(_ids(ctx, None, None)) == sorted(_entry_id(i) for i in range(1, 41))
    assert len(_ids(ctx, "agencies", "A1")) == 10


async def test_deliveries_during_a_flush_join_the_next_one(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds", feeds_window=0.05)
    channel = _counting(ctx)

    async def trickle(item_id: int) -> Receipt:
        await asyncio.sleep(item_id * 0.005)  # spread over about 0.2 s
        return await channel.publish(make_pub(item_id=item_id))

    receipts = await asyncio.gather(*(trickle(i) for i in range(1, 41)))

    assert all(r.confirmed_at is not None for r in receipts)
    assert channel.writes[paths.feed_file(None, None, "atom")] < 20
    assert len(_ids(ctx, None, None)) == 40


async def test_an_unreadable_state_is_permanent(context: Ctx, make_pub: MakePub) -> None:
    ctx = context(name="feeds", feeds_window=0)
    _state(ctx).mkdir(parents=True)
    (_state(ctx) / "all.json").write_text("{not json")

    with pytest.raises(PermanentError, match=r"state/feeds/all\.json is unreadable"):
        await feeds_factory(ctx).publish(make_pub())


async def test_an_unreadable_item_record_fails_only_its_delivery(
    context: Ctx, make_pub: MakePub
) -> None:
    ctx = context(name="feeds", feeds_window=0.05)
    (_state(ctx) / "items").mkdir(parents=True)
    (_state(ctx) / "items" / "3.json").write_text('{"version": "x"}')
    channel = feeds_factory(ctx)

    results = await asyncio.gather(
        *(channel.publish(make_pub(item_id=i)) for i in (1, 2, 3, 4)), return_exceptions=True
    )

    assert isinstance(results[2], PermanentError)
    assert "items/3.json" in str(results[2])
    assert all(isinstance(r, Receipt) and r.confirmed_at for i, r in enumerate(results) if i != 2)
    assert sorted(_ids(ctx, None, None)) == sorted(_entry_id(i) for i in (1, 2, 4))


async def test_a_data_dir_under_a_regular_file_is_permanent(
    context: Ctx, make_pub: MakePub, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")

    with pytest.raises(PermanentError):
        await feeds_factory(context(name="feeds", data_dir=blocker, feeds_window=0)).withdraw(
            make_pub(action="withdraw"), Receipt()
        )


async def test_a_bad_domain_key_is_permanent(context: Ctx, make_pub: MakePub) -> None:
    with pytest.raises(PermanentError, match="domain key"):
        await _channel(context).publish(make_pub(domain="../etc"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"base_url": "gk.example.gov.cn"}, "base_url"),
        ({"feeds_window": 30}, "feeds_window"),
        ({"hub_url": "ftp://hub.example"}, "hub_url"),
    ],
)
def test_factory_refuses_bad_settings(context: Ctx, settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        feeds_factory(context(name="feeds", **settings))


async def test_the_old_layouts_state_is_removed_from_the_public_directory(
    context: Ctx, make_pub: MakePub
) -> None:
    ctx = context(name="feeds", feeds_window=0)
    old = _site(ctx) / "feeds"
    old.mkdir(parents=True)
    (old / "all.json").write_text('{"entries": {}}')
    (old / ".lock").write_text("")
    channel = feeds_factory(ctx)
    assert not (old / "all.json").exists() and not (old / ".lock").exists()
    await channel.publish(make_pub())
    assert (old / "all.atom").exists()
    assert not [p for p in _site(ctx).rglob("*") if p.suffix == ".json" or p.name == ".lock"]
