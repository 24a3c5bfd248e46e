"""The dispatcher end to end: real Redis, a real SQL database, workers, channels that fail.

Each test runs on SQLite (and PostgreSQL with TEST_DATABASE_URL) against the Redis in REDIS_URL,
or the embedded one. Waits are bounded; nothing here asserts timings.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from aiohttp import web

from dispatcher.dispatch import queue
from dispatcher.rules.deadlines import today
from dispatcher.settings import Settings, load_settings
from dispatcher.storage import ledger
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries, events
from tests.fakes import FakeRemote, Script, scripted_registry
from tests.helpers import (
    Client,
    TokenFactory,
    all_in,
    approve_via_api,
    running_worker,
    statuses,
    wait_for,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent


async def test_approved_item_reaches_every_channel_once(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> None:
    scripts = {"website": Script(), "feeds": Script()}
    item_id = await approve_via_api(api, make_token)
    async with running_worker(dispatch_settings, scripted_registry(scripts)):
        await wait_until(all_in(db, "published"))
    assert [c[0] for c in scripts["website"].calls] == ["publish"]
    assert [c[0] for c in scripts["feeds"].calls] == ["publish"]
    reader = await make_token("auditor")
    body = await (await api.get(f"/api/v1/items/{item_id}", headers=reader)).json()
    for delivery in body["versions"][0]["deliveries"]:
        assert delivery["status"] == "published"
        assert delivery["attempts"] == 1
        assert delivery["confirmed_at"] >= delivery["requested_at"]
        assert delivery["external_id"] == f"{item_id}:1:{delivery['channel']}"
    async with db.connect() as conn:
        kinds = (await conn.execute(sa.select(events.c.kind))).scalars().all()
        assert kinds.count("delivery.published") == 2
        assert (await ledger.verify(conn)).ok


async def test_retryable_failures_then_success(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> None:
    scripts = {"website": Script(retryable=3), "feeds": Script()}
    await approve_via_api(api, make_token)
    async with running_worker(dispatch_settings, scripted_registry(scripts)):
        await wait_until(all_in(db, "published"))
    assert len(scripts["website"].calls) == 4
    async with db.connect() as conn:
        website = (
            await conn.execute(sa.select(deliveries).where(deliveries.c.channel == "website"))
        ).one()
        retries = (
            await conn.execute(
                sa.select(sa.func.count()).where(events.c.kind == "delivery.retrying")
            )
        ).scalar()
    assert (website.attempts, website.last_error, retries) == (4, None, 3)


async def test_gives_up_after_max_attempts(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> None:
    scripts = {"website": Script(retryable=100), "feeds": Script()}
    await approve_via_api(api, make_token)
    async with running_worker(dispatch_settings, scripted_registry(scripts)):
        await wait_until(all_in(db, "published", "failed"))
    rows = {r[2]: r[4] for r in await statuses(db)}
    assert rows == {"website": "failed", "feeds": "published"}
    assert len(scripts["website"].calls) == dispatch_settings.dispatch.max_attempts


async def test_permanent_failure_is_visible_and_retried_by_hand(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> None:
    scripts = {"website": Script(permanent=True), "feeds": Script()}
    await approve_via_api(api, make_token)
    editor = await make_token("editor", holder="另一位编辑")
    async with running_worker(dispatch_settings, scripted_registry(scripts)):
        await wait_until(all_in(db, "published", "failed"))
        assert len(scripts["website"].calls) == 1
        listing = await (await api.get("/api/v1/deliveries?status=failed", headers=editor)).json()
        [failed] = listing["deliveries"]
        assert failed["channel"] == "website"
        assert "scripted refusal" in failed["last_error"]
        auditor = await make_token("auditor")
        url = f"/api/v1/deliveries/{failed['id']}/retry"
        assert (await api.post(url, headers=auditor)).status == 403
        scripts["website"].permanent = False
        response = await api.post(url, headers=editor)
        assert response.status == 200, await response.text()
        await wait_until(all_in(db, "published"))
        assert (await api.post(url, headers=editor)).status == 409


async def test_scheduled_item_waits_for_its_time(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> None:
    scripts = {"website": Script(), "feeds": Script()}
    at = datetime.now(UTC) + timedelta(seconds=3)
    formed = today().isoformat()  # a release within the 3 days bid candidates have
    item_id = await approve_via_api(api, make_token, publish_at=at.isoformat(), formed_on=formed)
    client = aioredis.from_url(dispatch_settings.storage.redis_url)
    try:  # the approval queued each job deferred to the release time (arq scores: ms)
        for channel in scripts:
            score = await client.zscore(queue.SITE_QUEUE, f"{item_id}:1:{channel}")
            assert score == round(at.timestamp() * 1000)
    finally:
        await client.aclose()
    async with running_worker(dispatch_settings, scripted_registry(scripts)):
        await wait_until(all_in(db, "published"), seconds=15)
    async with db.connect() as conn:
        confirmed = (await conn.execute(sa.select(deliveries.c.confirmed_at))).scalars().all()
    assert len(confirmed) == 2 and all(c >= at for c in confirmed)
    assert [len(s.calls) for s in scripts.values()] == [1, 1]


async def test_flushall_mid_run_loses_nothing(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> None:
    for n in range(10):
        await approve_via_api(api, make_token, title=f"公示{n}")
    client = aioredis.from_url(dispatch_settings.storage.redis_url)
    assert await client.zcard(queue.SITE_QUEUE) == 20
    await client.flushall()
    assert await client.zcard(queue.SITE_QUEUE) == 0
    await client.aclose()
    scripts = {"website": Script(), "feeds": Script()}
    async with running_worker(dispatch_settings, scripted_registry(scripts)):
        await wait_until(all_in(db, "published"))
    assert len(scripts["website"].calls) == len(set(scripts["website"].calls)) == 10


async def test_withdrawal_racing_a_publish(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> None:
    scripts = {"website": Script(hold=True), "feeds": Script(hold=True)}
    item_id = await approve_via_api(api, make_token)
    approver = await make_token("approver", holder="另一位审核")
    async with running_worker(dispatch_settings, scripted_registry(scripts)):
        for script in scripts.values():  # both publishes are in flight, held by the remote
            await wait_for(script.started)
        url = f"/api/v1/items/{item_id}/withdraw"
        response = await api.post(url, json={"reason": "项目终止"}, headers=approver)
        assert response.status == 200
        for script in scripts.values():
            script.release.set()
        await wait_until(all_in(db, "published", "withdrawn"))
    for script in scripts.values():
        assert [c[0] for c in script.calls] == ["publish", "withdraw"]
    assert sorted((r[3], r[4]) for r in await statuses(db)) == [
        ("publish", "published"), ("publish", "published"),
        ("withdraw", "withdrawn"), ("withdraw", "withdrawn"),
    ]  # fmt: skip


async def test_withdrawn_before_sending_is_skipped_everywhere(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> None:
    item_id = await approve_via_api(api, make_token)
    approver = await make_token("approver", holder="另一位审核")
    await api.post(f"/api/v1/items/{item_id}/withdraw", json={"reason": "撤回"}, headers=approver)
    scripts = {"website": Script(), "feeds": Script()}
    async with running_worker(dispatch_settings, scripted_registry(scripts)):
        await wait_until(all_in(db, "skipped"))
    assert scripts["website"].calls == scripts["feeds"].calls == []


async def test_superseded_version_is_skipped_and_the_new_one_sent(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> None:
    item_id = await approve_via_api(api, make_token)
    editor = await make_token("editor", holder="编辑2")
    approver = await make_token("approver", holder="审核2")
    change = {"change_note": "更正报价", "title": "更正后的公示"}
    await api.post(f"/api/v1/items/{item_id}/revisions", json=change, headers=editor)
    await api.post(f"/api/v1/items/{item_id}/approve", headers=approver)
    scripts = {"website": Script(), "feeds": Script()}
    async with running_worker(dispatch_settings, scripted_registry(scripts)):
        await wait_until(all_in(db, "published", "skipped"))
    rows = sorted((r[1], r[4]) for r in await statuses(db))
    assert rows == [(1, "skipped"), (1, "skipped"), (2, "published"), (2, "published")]
    assert scripts["website"].calls == [("publish", f"{item_id}:2:website")]


async def test_channel_concurrency_limit(
    api: Client, make_token: TokenFactory, db: Database, dispatch_env: dict[str, str]
) -> None:
    settings = load_settings(env={**dispatch_env, "GONGKAI_CHANNELS": "website"})
    settings = settings.model_copy(
        update={"dispatch": settings.dispatch.model_copy(update={"concurrency": {"website": 2}})}
    )
    for n in range(6):
        await approve_via_api(api, make_token, title=f"公示{n}")
    scripts = {"website": Script(hold=True), "feeds": Script()}

    async def all_claimed_two_sending() -> bool:
        sending = [r for r in await statuses(db) if r[2] == "website" and r[4] == "sending"]
        return len(sending) == 6 and scripts["website"].active == 2

    async with running_worker(settings, scripted_registry(scripts)):
        # All six are claimed (leased in SQL) before they queue for the channel: only two
        # get in while the remote holds them.
        await wait_until(all_claimed_two_sending)
        scripts["website"].release.set()
        await wait_until(all_in(db, "published", "failed"))
    assert scripts["website"].max_active == 2
    assert len(scripts["website"].calls) == 6


@pytest.mark.timeout(120)
async def test_worker_killed_mid_publish_loses_and_doubles_nothing(
    api: Client,
    make_token: TokenFactory,
    db: Database,
    dispatch_env: dict[str, str],
    tmp_path: Path,
) -> None:
    remote = FakeRemote(hold=True)
    runner = web.AppRunner(remote.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    env = {**os.environ, **dispatch_env}
    log = (tmp_path / "worker.log").open("ab")

    def start_worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - our own test worker
            [sys.executable, str(ROOT / "tests" / "worker_entry.py"), f"http://127.0.0.1:{port}"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    try:
        for n in range(5):
            await approve_via_api(api, make_token, title=f"公示{n}")
        first = start_worker()
        await asyncio.wait_for(remote.started.wait(), 20)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        remote.release.set()
        second = start_worker()
        try:
            await wait_until(all_in(db, "published"), seconds=60)
        except AssertionError:
            print(await statuses(db))
            raise
        finally:
            second.terminate()
            second.wait(10)
    finally:
        await runner.cleanup()
        log.close()
    keys = {f"{r[0]}:{r[1]}:{r[2]}" for r in await statuses(db)}
    assert set(remote.stored) == keys
    assert len(keys) == 10
    async with db.connect() as conn:
        published = (
            (
                await conn.execute(
                    sa.select(events.c.delivery_id).where(events.c.kind == "delivery.published")
                )
            )
            .scalars()
            .all()
        )
        assert len(published) == len(set(published)) == 10
        assert (await ledger.verify(conn)).ok


async def test_metrics_after_delivery(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> None:
    scripts = {"website": Script(), "feeds": Script()}
    await approve_via_api(api, make_token)
    async with running_worker(dispatch_settings, scripted_registry(scripts)):
        await wait_until(all_in(db, "published"))
    text = await (await api.get("/metrics")).text()
    assert 'gongkai_deliveries{channel="website",state="published"} 1.0' in text
    assert "gongkai_delivery_confirm_seconds_count 2.0" in text
    assert 'gongkai_delivery_confirm_seconds_bucket{le="+Inf"} 2.0' in text


@pytest.mark.timeout(60)
async def test_cli_worker_and_retry(
    api: Client, make_token: TokenFactory, db: Database, dispatch_env: dict[str, str]
) -> None:
    """`gongkai worker` delivers with the real channels; `gongkai retry` re-queues a failure."""
    await approve_via_api(api, make_token)
    async with db.transaction() as conn:
        await conn.execute(
            deliveries.update().where(deliveries.c.channel == "feeds").values(status="failed")
        )
    env = {**os.environ, **dispatch_env}
    script = str(Path(sys.executable).with_name("gongkai"))
    worker = await asyncio.create_subprocess_exec(
        script, "worker", env=env, cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_until(all_in(db, "published", "failed"))
        retry = await asyncio.create_subprocess_exec(
            script, "retry", "2", "--as", "值班员", env=env, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(retry.communicate(), 30)
        assert retry.returncode == 0, err.decode()
        # Queued now, or by the approval's job if the worker has not reached it yet.
        assert re.fullmatch(
            r"delivery 2 is pending again (and queued|\(its job was already in the queue\))\n",
            out.decode(),
        ), out.decode()
        await wait_until(all_in(db, "published"))
    finally:
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(worker.wait(), 20) == 0
    site = Path(dispatch_env["GONGKAI_DATA_DIR"]) / "site"
    assert (site / "items" / "1.html").is_file()
    assert (site / "feeds" / "all.atom").is_file()
