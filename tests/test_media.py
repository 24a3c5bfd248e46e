"""News media end to end: the real worker, the real database and Redis, and local outlets
(`channels/media/sandbox.py`) on 127.0.0.1 that verify every signature. Waits are bounded;
nothing sleeps to synchronise."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa

import channels
from channels.media.sandbox import Outlet, OutletSandbox, RunningOutlets, running_outlets
from channels.media.settings import new_secret
from dispatcher.items import workflow
from dispatcher.rules.rulebook import Rules, build_rules
from dispatcher.settings import Settings, load_settings
from dispatcher.storage import ledger
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries
from tests.helpers import APPROVER, EDITOR, all_in, bid_candidates, running_worker, wait_until

SECRETS = {"xinhua": new_secret(), "people": new_secret()}
OUTLETS = tuple(f"media:{name}" for name in SECRETS)


@pytest.fixture
def sandbox() -> OutletSandbox:
    return OutletSandbox([Outlet(name, [secret]) for name, secret in SECRETS.items()])


@pytest.fixture
async def outlets(sandbox: OutletSandbox) -> AsyncIterator[RunningOutlets]:
    async with running_outlets(sandbox) as running:
        yield running


def media_env(dispatch_env: dict[str, str], outlets: RunningOutlets, **more: str) -> dict[str, str]:
    env = {**dispatch_env, "GONGKAI_CHANNELS": ",".join(("website", *OUTLETS)),
           "GONGKAI_RETRY_CAP": "0.5", "GONGKAI_MAX_ATTEMPTS": "40"}  # fmt: skip
    for name, secret in SECRETS.items():
        env[f"GONGKAI_MEDIA_{name.upper()}_URL"] = outlets.url_for(name)
        env[f"GONGKAI_MEDIA_{name.upper()}_SECRET"] = secret
    return {**env, **more}


@pytest.fixture
def media_settings(dispatch_env: dict[str, str], outlets: RunningOutlets) -> Settings:
    return load_settings(env=media_env(dispatch_env, outlets))


async def release(db: Database, rules: Rules, **changes: Any) -> int:
    item = bid_candidates(channels=["website", *OUTLETS], **changes)
    item_id, _ = await workflow.submit(db, rules, EDITOR, item)
    await workflow.approve(db, APPROVER, item_id)
    return item_id


async def rows(db: Database, item_id: int, channel: str) -> list[Any]:
    async with db.connect() as conn:
        query = sa.select(deliveries).where(
            deliveries.c.item_id == item_id, deliveries.c.channel == channel
        )
        return list(await conn.execute(query.order_by(deliveries.c.version)))


async def test_every_outlet_receives_the_item_and_its_article_is_recorded(
    db: Database, agencies: list[str], media_settings: Settings, sandbox: OutletSandbox
) -> None:
    item_id = await release(db, build_rules(media_settings))
    async with running_worker(media_settings, channels.REGISTRY):
        await wait_until(all_in(db, "published"))
    for name, outlet in sandbox.outlets.items():
        [event] = outlet.received
        assert (event.type, event.item_id, event.webhook_id) == (
            "item.published", item_id, f"{item_id}:1:media:{name}")  # fmt: skip
        [row] = await rows(db, item_id, f"media:{name}")
        assert (row.status, row.external_id) == ("published", event.article_id)
        assert row.url.endswith(f"/outlets/{name}/articles/1") and row.confirmed_at is not None
    async with db.connect() as conn:
        assert (await ledger.verify(conn)).ok


async def test_revisions_and_a_withdrawal_arrive_in_order(
    db: Database, agencies: list[str], media_settings: Settings, sandbox: OutletSandbox
) -> None:
    """Revised twice and withdrawn while the outlets are slow, so versions overlap: a newer
    version waits while an older one is in flight; one superseded before it was sent is
    skipped, never sent late; the withdrawal waits for the publication it takes down."""
    rules = build_rules(media_settings)
    for outlet in sandbox.outlets.values():
        outlet.script.extend([0.3, 0.3])  # slow answers: later versions queue behind

    def reached(attempts: int) -> Callable[[], bool]:
        return lambda: all(o.attempts >= attempts for o in sandbox.outlets.values())

    item_id = await release(db, rules)
    async with running_worker(media_settings, channels.REGISTRY):
        await wait_until(reached(1))  # version 1 is at the outlets, not yet answered
        for n in (1, 2):  # versions 2 and 3: 2 is superseded by 3 before it can go
            await workflow.revise(db, rules, EDITOR, item_id, {"change_note": f"第{n}次更正",
                                                                "summary": f"更正{n}"})  # fmt: skip
            await workflow.approve(db, APPROVER, item_id)
        await wait_until(reached(2))  # version 3 is at the outlets
        await workflow.withdraw(db, APPROVER, item_id, {"reason": "项目终止"})
        await wait_until(all_in(db, "published", "withdrawn", "skipped"), 30)
    for name, outlet in sandbox.outlets.items():
        assert outlet.types(item_id) == ["item.published", "item.revised", "item.withdrawn"]
        assert [e.version for e in outlet.received] == [1, 3, 4]
        assert outlet.received[-1].data["withdrawal_reason"] == "项目终止"
        states = [r.status for r in await rows(db, item_id, f"media:{name}")]
        assert states == ["published", "skipped", "published", "withdrawn"]


async def test_an_outlet_down_for_a_while_receives_everything_once_back(
    db: Database, agencies: list[str], dispatch_env: dict[str, str], sandbox: OutletSandbox
) -> None:
    async with running_outlets(sandbox) as first:  # only to learn a port and the URLs
        port = int(first.base_url.rsplit(":", 1)[1])
        settings = load_settings(env=media_env(dispatch_env, first))
    rules = build_rules(settings)
    ids = [await release(db, rules, title=f"第{n}号公示", project_code=f"E990100000123{n:04d}")
           for n in range(5)]  # fmt: skip
    async with running_worker(settings, channels.REGISTRY):

        async def retried() -> bool:
            attempts = [r.attempts for i in ids for r in await rows(db, i, "media:xinhua")]
            return min(attempts) >= 2

        await wait_until(retried)  # the outlet is down: refused connections, retried
        async with running_outlets(sandbox, port=port):
            await wait_until(all_in(db, "published"), 30)

    for outlet in sandbox.outlets.values():
        assert sorted(e.item_id for e in outlet.received) == ids  # each once
        assert outlet.duplicates == 0


async def test_an_outlet_takes_only_its_domains_and_regions(
    db: Database, agencies: list[str], dispatch_env: dict[str, str], outlets: RunningOutlets,
    sandbox: OutletSandbox,
) -> None:  # fmt: skip
    env = media_env(dispatch_env, outlets, GONGKAI_MEDIA_XINHUA_DOMAINS="land,mining",
                    GONGKAI_MEDIA_PEOPLE_REGIONS="99")  # fmt: skip
    settings = load_settings(env=env)
    item_id = await release(db, build_rules(settings))  # bidding, region 990100
    async with running_worker(settings, channels.REGISTRY):
        await wait_until(all_in(db, "published", "skipped"))
    [skipped] = await rows(db, item_id, "media:xinhua")
    assert skipped.status == "skipped"
    assert "takes only the domains land, mining" in skipped.last_error
    assert sandbox.outlets["xinhua"].received == []
    assert [e.item_id for e in sandbox.outlets["people"].received] == [item_id]
