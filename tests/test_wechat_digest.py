"""The followers' daily digest (群发): the day's live articles in one mass send, once; no quota
defers it to the next window, where it merges with that day's; a lost answer is not resent.

Items are published by the real worker to the local stand-in of the WeChat API; the digest's
minute tick (`digests.tick`, the worker's `digest` cron) is called directly, with the clock
moved a day on where a test needs the next window.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

import channels
from channels.base import SHANGHAI
from channels.wechat.sandbox import RunningSandbox, Sandbox, running_sandbox
from dispatcher.dispatch import digests
from dispatcher.dispatch.channels import Enabled, build_channels
from dispatcher.errors import SettingsError
from dispatcher.items import workflow
from dispatcher.ops.sandbox import ACCOUNT, with_sandbox_account
from dispatcher.rules.rulebook import build_rules
from dispatcher.settings import Settings, load_settings
from dispatcher.storage import ledger
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries, events
from dispatcher.storage.models import digests as digest_rows
from tests.helpers import APPROVER, all_in, running_worker, wait_until
from tests.test_wechat import APPID, SECRET, publish, wechat_env

LEASE, MAX_ATTEMPTS = 30.0, 4


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with running_sandbox(Sandbox({APPID: SECRET})) as running:
        yield running


@pytest.fixture
def digest_settings(dispatch_env: dict[str, str], sandbox: RunningSandbox) -> Settings:
    # 00:00 Beijing: today's digest is due whenever the test runs.
    env = wechat_env(dispatch_env, sandbox.base_url, GONGKAI_WECHAT_NOTIFY="digest",
                     GONGKAI_WECHAT_DIGEST_AT="00:00")  # fmt: skip
    return load_settings(env=env)


@pytest.fixture
def worker_settings(dispatch_env: dict[str, str], sandbox: RunningSandbox) -> Settings:
    """The same account without the digest, for the workers that publish: their own `digest`
    cron must not open today's digest before a test's tick does."""
    return load_settings(env=wechat_env(dispatch_env, sandbox.base_url))


@pytest.fixture
async def enabled(digest_settings: Settings) -> AsyncIterator[dict[str, Enabled]]:
    """The worker's channels, to hand to the digest's tick."""
    rules = build_rules(digest_settings)
    async with aiohttp.ClientSession() as session:
        yield build_channels(digest_settings, rules.catalogue, channels.REGISTRY, session)


async def tick(db: Database, settings: Settings, enabled: dict[str, Enabled], now: datetime
               ) -> list[str]:  # fmt: skip
    catalogue = build_rules(settings).catalogue
    return await digests.tick(db, catalogue, enabled, now, LEASE, MAX_ATTEMPTS)


async def rows(db: Database) -> list[Any]:
    async with db.connect() as conn:
        return (await conn.execute(sa.select(digest_rows).order_by(digest_rows.c.id))).all()


async def by_confirmation(db: Database, item_ids: list[int]) -> list[int]:
    """The items, newest confirmed on WeChat first."""
    async with db.connect() as conn:
        found = await conn.execute(
            sa.select(deliveries.c.item_id)
            .where(deliveries.c.channel == "wechat", deliveries.c.item_id.in_(item_ids))
            .order_by(deliveries.c.confirmed_at.desc(), deliveries.c.id.desc())
        )
        return list(found.scalars())


async def kinds(db: Database) -> list[str]:
    async with db.connect() as conn:
        assert (await ledger.verify(conn)).ok
        found = await conn.execute(
            sa.select(events.c.kind).where(events.c.kind.like("digest.%")).order_by(events.c.seq)
        )
        return list(found.scalars())


async def publish_all(db: Database, settings: Settings, titles: list[str]) -> list[int]:
    rules = build_rules(settings)
    ids = [await publish(db, rules, title=t, project_code=f"E99010000001{n:05d}")
           for n, t in enumerate(titles)]  # fmt: skip
    async with running_worker(settings, channels.REGISTRY):
        await wait_until(all_in(db, "published"), 60)
    return ids


async def test_the_days_live_articles_go_out_once_in_one_mass_send(
    db: Database, agencies: list[str], digest_settings: Settings, sandbox: RunningSandbox,
    enabled: dict[str, Enabled], worker_settings: Settings,
) -> None:  # fmt: skip
    ids = await publish_all(db, worker_settings, ["第一项公示", "第二项公示", "被撤回的公示"])
    await workflow.withdraw(db, APPROVER, ids[2], {"reason": "项目终止"})
    async with running_worker(worker_settings, channels.REGISTRY):
        await wait_until(all_in(db, "published", "withdrawn", "skipped"), 60)

    now = datetime.now(UTC)
    assert await tick(db, digest_settings, enabled, now) == [
        "wechat: opened",
        f"wechat {now.astimezone(SHANGHAI).date()}: sent",
    ]
    [sent] = sandbox.sandbox.mass_sends(APPID)
    day = now.astimezone(SHANGHAI).date().isoformat()
    assert sent.clientmsgid == f"wechat:{day}"
    # Newest on WeChat first; the withdrawn one left out.
    newest_first = await by_confirmation(db, ids[:2])
    titles = {ids[0]: "第一项公示", ids[1]: "第二项公示"}
    assert sent.titles == tuple(titles[i] for i in newest_first)
    [row] = await rows(db)
    assert row.status == "sent" and row.external_id == str(sent.msg_id)
    assert row.confirmed_at is not None
    assert row.steps["draft_for"] == [f"{i}:1:wechat" for i in newest_first]
    assert await kinds(db) == ["digest.opened", "digest.sent"]

    # Later the same day: nothing more is opened or sent.
    assert await tick(db, digest_settings, enabled, now + timedelta(hours=1)) == []
    assert len(sandbox.sandbox.mass_sends(APPID)) == 1


async def test_no_quota_waits_for_the_next_window_and_goes_out_with_that_days(
    db: Database, agencies: list[str], digest_settings: Settings, sandbox: RunningSandbox,
    enabled: dict[str, Enabled], worker_settings: Settings,
) -> None:  # fmt: skip
    await publish_all(db, worker_settings, ["今天的公示"])
    sandbox.sandbox.faults.mass_quota = 0
    now = datetime.now(UTC)
    await tick(db, digest_settings, enabled, now)
    [row] = await rows(db)
    assert row.status == "pending" and "45028" in row.last_error
    assert row.steps["mass_sent"] is False  # refused: nothing went out, so it may be merged
    tomorrow = datetime.combine(now.astimezone(SHANGHAI).date() + timedelta(days=1),
                                datetime.min.time(), tzinfo=SHANGHAI)  # fmt: skip
    assert abs((row.next_attempt_at - tomorrow).total_seconds()) < 120  # the next 00:00
    assert sandbox.sandbox.mass_sends(APPID) == []

    await publish_all(db, worker_settings, ["明天的公示"])
    sandbox.sandbox.faults.mass_quota = 1
    later = now + timedelta(days=1)
    await tick(db, digest_settings, enabled, later)
    first, second = await rows(db)
    assert first.status == "merged" and first.merged_into == second.id
    assert second.status == "sent" and second.window_start == first.window_start
    [sent] = sandbox.sandbox.mass_sends(APPID)
    assert sent.titles == ("明天的公示", "今天的公示")
    assert await kinds(db) == ["digest.opened", "digest.deferred", "digest.opened",
                               "digest.merged", "digest.sent"]  # fmt: skip


async def test_a_send_whose_answer_was_lost_is_not_sent_again(
    db: Database, agencies: list[str], digest_settings: Settings, sandbox: RunningSandbox,
    enabled: dict[str, Enabled], worker_settings: Settings,
) -> None:  # fmt: skip
    await publish_all(db, worker_settings, ["一项公示"])
    now = datetime.now(UTC)
    await tick(db, digest_settings, enabled, now)
    # As a worker killed after sendall went out, before its answer was written, leaves it:
    # leased, the send marked as made, its msg_id unknown.
    [row] = await rows(db)
    steps = {k: v for k, v in row.steps.items() if k != "msg_id"}
    async with db.transaction() as conn:
        await conn.execute(
            digest_rows.update().values(
                status="sending",
                steps=steps,
                external_id=None,
                lease_until=now - timedelta(seconds=1),
            )
        )
    drafts = sandbox.sandbox.count("cgi-bin/draft/add")
    await tick(db, digest_settings, enabled, now + timedelta(minutes=1))
    [row] = await rows(db)
    assert row.status == "sent" and row.attempts == 2
    assert len(sandbox.sandbox.mass_sends(APPID)) == 1  # WeChat refused the repeat: 45065
    assert sandbox.sandbox.count("cgi-bin/message/mass/sendall") == 2
    assert sandbox.sandbox.count("cgi-bin/draft/add") == drafts  # the same draft


async def test_an_item_withdrawn_before_the_send_gets_a_new_draft_without_it(
    db: Database, agencies: list[str], digest_settings: Settings, sandbox: RunningSandbox,
    enabled: dict[str, Enabled], worker_settings: Settings,
) -> None:  # fmt: skip
    ids = await publish_all(db, worker_settings, ["保留的公示", "撤回的公示"])
    sandbox.sandbox.faults.mass_quota = 0  # drafted, then refused: it waits with its draft
    now = datetime.now(UTC)
    await tick(db, digest_settings, enabled, now)
    [row] = await rows(db)
    old_draft = row.steps["draft_media_id"]
    assert [d.media_id for d in sandbox.sandbox.drafts(APPID)] == [old_draft]

    await workflow.withdraw(db, APPROVER, ids[1], {"reason": "信息有误"})
    async with running_worker(worker_settings, channels.REGISTRY):
        await wait_until(all_in(db, "published", "withdrawn", "skipped"), 60)
    sandbox.sandbox.faults.mass_quota = 1
    async with db.transaction() as conn:  # its next window has come
        await conn.execute(digest_rows.update().values(next_attempt_at=now))
    await tick(db, digest_settings, enabled, now + timedelta(minutes=1))
    [row] = await rows(db)
    assert row.status == "sent" and row.steps["draft_media_id"] != old_draft
    assert old_draft not in [d.media_id for d in sandbox.sandbox.drafts(APPID)]  # deleted
    [sent] = sandbox.sandbox.mass_sends(APPID)
    assert sent.titles == ("保留的公示",)


async def test_a_window_with_nothing_live_is_skipped(
    db: Database, agencies: list[str], digest_settings: Settings, sandbox: RunningSandbox,
    enabled: dict[str, Enabled], worker_settings: Settings,
) -> None:  # fmt: skip
    await tick(db, digest_settings, enabled, datetime.now(UTC))
    [row] = await rows(db)
    assert row.status == "skipped" and "nothing published" in row.last_error
    assert sandbox.sandbox.count() == 0


async def test_a_digest_time_that_is_not_a_time_is_refused(
    dispatch_env: dict[str, str], sandbox: RunningSandbox
) -> None:
    env = wechat_env(dispatch_env, sandbox.base_url, GONGKAI_WECHAT_NOTIFY="digest",
                     GONGKAI_WECHAT_DIGEST_AT="24:00")  # fmt: skip
    with pytest.raises(SettingsError, match=r"channels.wechat.digest_at: .*HH:MM"):
        load_settings(env=env)


def test_the_sandbox_account_rehearses_the_digest_when_asked(dispatch_env: dict[str, str]) -> None:
    env = {**dispatch_env, "GONGKAI_WECHAT_NOTIFY": "digest", "GONGKAI_WECHAT_DIGEST_AT": "09:30"}
    settings = with_sandbox_account(load_settings(env=env), "http://127.0.0.1:9")
    account = settings.channels.section(ACCOUNT)
    assert (account.notify, account.digest_at) == ("digest", "09:30")
    plain = with_sandbox_account(load_settings(env=dispatch_env), "http://127.0.0.1:9")
    assert plain.channels.section(ACCOUNT).notify == "none"
