"""Feeds link their WebSub hub and ping it after each rewrite; a failing hub loses nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import feedparser
import pytest

from channels import paths
from channels.feeds import FeedsChannel, feeds_factory
from channels.websub import Hub
from dispatcher.dispatch.channels import channel_settings
from dispatcher.settings import load_settings
from tests.channels.conftest import BASE_URL, FEEDS, Ctx, MakePub
from tests.fakes import FakeHub
from tests.helpers import CATALOGUE


def _topics(feeds: list[tuple[str | None, str | None]]) -> list[str]:
    return sorted(BASE_URL + paths.feed_url(k, c, f) for k, c in feeds for f in ("atom", "rss"))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def hub() -> AsyncIterator[tuple[FakeHub, str]]:
    fake = FakeHub()
    async with fake.serve() as url:
        yield fake, url


@pytest.fixture
def channel(
    context: Ctx, session: aiohttp.ClientSession, hub: tuple[FakeHub, str]
) -> Callable[..., FeedsChannel]:
    def make(**settings: Any) -> FeedsChannel:
        settings = {"hub_url": hub[1], "feeds_window": 0, **settings}
        ctx = dataclasses.replace(context(name="feeds", **settings), session=session)
        built = feeds_factory(ctx)
        assert built.hub is not None
        built.hub.backoff = 0.01  # keep the retries quick
        return built

    return make


def _parse(channel: FeedsChannel, kind: str | None, code: str | None, fmt: str) -> Any:
    parsed = feedparser.parse((channel.site_dir / paths.feed_file(kind, code, fmt)).read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


async def test_every_feed_links_its_hub(
    channel: Callable[..., FeedsChannel], hub: tuple[FakeHub, str], make_pub: MakePub
) -> None:
    feeds = channel()
    await feeds.publish(make_pub())

    for kind, code in FEEDS:
        for fmt in ("atom", "rss"):
            links = _parse(feeds, kind, code, fmt).feed.links
            assert [link.href for link in links if link.rel == "hub"] == [hub[1]]
            assert [link.href for link in links if link.rel == "self"] == [
                BASE_URL + paths.feed_url(kind, code, fmt)
            ]


async def test_no_hub_no_hub_link(context: Ctx, make_pub: MakePub) -> None:
    feeds = feeds_factory(context(name="feeds", feeds_window=0))
    await feeds.publish(make_pub())

    assert feeds.hub is None
    assert b'rel="hub"' not in (feeds.site_dir / paths.feed_file(None, None, "rss")).read_bytes()


async def test_each_rewritten_feed_is_pinged(
    channel: Callable[..., FeedsChannel], hub: tuple[FakeHub, str], make_pub: MakePub
) -> None:
    fake, _ = hub
    feeds = channel()

    await feeds.publish(make_pub())

    assert sorted(fake.pings) == _topics(FEEDS)
    assert fake.content_types == {"application/x-www-form-urlencoded"}

    fake.pings.clear()
    await feeds.publish(make_pub())  # nothing changed: nothing rewritten, no ping
    assert fake.pings == []

    await feeds.publish(make_pub(item_id=8, region="500104"))
    assert sorted(fake.pings) == _topics([*FEEDS[:3], ("regions", "500104")])


async def test_a_burst_pings_each_feed_once_per_flush(
    channel: Callable[..., FeedsChannel], hub: tuple[FakeHub, str], make_pub: MakePub
) -> None:
    fake, _ = hub
    feeds = channel(feeds_window=0.2)

    receipts = await asyncio.gather(*(feeds.publish(make_pub(item_id=i)) for i in range(1, 41)))

    assert all(r.confirmed_at is not None for r in receipts)
    assert set(fake.pings) == set(_topics(FEEDS))
    assert max(Counter(fake.pings).values()) <= 2  # one ping per rewrite, not per item


async def test_a_failing_hub_is_retried_and_loses_no_publication(
    channel: Callable[..., FeedsChannel],
    hub: tuple[FakeHub, str],
    make_pub: MakePub,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, _ = hub
    fake.failures.extend([503, 502])  # the first two requests fail, retries succeed
    feeds = channel()

    with caplog.at_level(logging.WARNING, logger="channels.websub"):
        receipt = await feeds.publish(make_pub())

    assert receipt.confirmed_at is not None
    assert sorted(fake.pings) == _topics(FEEDS)  # every topic reached the hub in the end
    assert len(fake.attempts) == len(fake.pings) + 2
    assert "answered 503" in caplog.text
    assert "hub-secret-token" not in caplog.text


async def test_a_hub_that_stays_down_only_logs(
    channel: Callable[..., FeedsChannel],
    hub: tuple[FakeHub, str],
    make_pub: MakePub,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, _ = hub
    fake.failures.extend([503] * 100)
    feeds = channel()

    with caplog.at_level(logging.WARNING, logger="channels.websub"):
        receipt = await feeds.publish(make_pub())

    assert receipt.confirmed_at is not None
    assert fake.pings == []
    assert Counter(fake.attempts) == Counter({t: 3 for t in _topics(FEEDS)})  # bounded
    assert [e.id for e in _parse(feeds, None, None, "atom").entries] == [receipt.external_id]
    assert "hub-secret-token" not in caplog.text


async def test_an_unreachable_hub_only_logs(
    context: Ctx, session: aiohttp.ClientSession, make_pub: MakePub, tmp_path: Path
) -> None:
    ctx = dataclasses.replace(
        context(name="feeds", feeds_window=0, hub_url="http://127.0.0.1:9/hub"), session=session
    )  # the discard port: connection refused
    feeds = feeds_factory(ctx)
    assert feeds.hub is not None
    feeds.hub.backoff = 0.01

    receipt = await feeds.publish(make_pub())

    assert receipt.confirmed_at is not None


@pytest.mark.parametrize(("status", "tries"), [(400, 1), (404, 1), (429, 3), (500, 3)])
async def test_which_hub_answers_are_retried(
    session: aiohttp.ClientSession, hub: tuple[FakeHub, str], status: int, tries: int
) -> None:
    fake, url = hub
    fake.failures.extend([status] * 5)

    accepted = await Hub(url, session, backoff=0.01).announce(["https://x.example/feeds/all.atom"])

    assert accepted == {"https://x.example/feeds/all.atom": False}
    assert len(fake.attempts) == tries


def test_the_hub_url_comes_from_the_site_settings() -> None:
    settings = load_settings(env={"GONGKAI_HUB_URL": "https://hub.example/"}, path=None)

    assert settings.site.hub_url == "https://hub.example/"
    assert channel_settings(settings, CATALOGUE, "feeds")["hub_url"] == "https://hub.example/"
    assert load_settings(env={}).site.hub_url == ""
