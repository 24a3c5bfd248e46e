"""The worker around arq: it stops cleanly with a job in flight, and what it relies on of arq is
there (this fails loudly, naming it, if an arq release changes it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from dispatcher.dispatch import queue
from dispatcher.dispatch.worker import ARQ_INTERNALS, DispatchWorker, build_worker
from dispatcher.settings import Settings
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries
from tests.fakes import Script, scripted_registry
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


def test_the_arq_internals_the_worker_stops_through_are_there(
    dispatch_settings: Settings,
) -> None:
    url = dispatch_settings.storage.redis_url
    worker = build_worker(dispatch_settings, url, {}, group=queue.REMOTE)
    assert isinstance(worker, DispatchWorker)
    missing = [name for name in ARQ_INTERNALS if not hasattr(worker, name)]
    assert missing == [], f"arq's Worker no longer has {missing}: rewrite DispatchWorker.stop"
    assert isinstance(worker.tasks, dict)
    # The sweeper, and the followers' digests, looked at every minute (`digests.tick`).
    assert sorted(job.name for job in worker.cron_jobs) == ["digest", "sweep"]
    site = build_worker(dispatch_settings, url, {}, group=queue.SITE)
    assert site.queue_name == queue.SITE_QUEUE != worker.queue_name == queue.QUEUE
    assert [job.name for job in site.cron_jobs] == ["sweep"]  # the digests are remote work


async def test_a_deferred_job_can_be_hurried_to_now(fresh_redis: str) -> None:
    """`queue.hurry` relies on arq's queue being a sorted set scored by run time (ms)."""
    pool = await queue.connect(fresh_redis)
    try:
        later = datetime.now(UTC) + timedelta(hours=1)
        assert await queue.enqueue(pool, 1, "1:1:wechat", later)
        score = await pool.zscore(queue.QUEUE, "1:1:wechat")
        assert score is not None and abs(score - later.timestamp() * 1000) < 1000
        assert await queue.hurry(pool, ["1:1:wechat", "9:9:absent"]) == 1
        now_ms = datetime.now(UTC).timestamp() * 1000
        assert abs(await pool.zscore(queue.QUEUE, "1:1:wechat") - now_ms) < 5000
        assert await pool.zscore(queue.QUEUE, "9:9:absent") is None  # never adds a job
    finally:
        await pool.aclose()


async def test_stopping_with_a_job_in_flight_keeps_its_lease_and_loses_nothing(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> None:
    held = {"website": Script(hold=True), "feeds": Script()}
    await approve_via_api(api, make_token)
    worker = build_worker(
        dispatch_settings,
        dispatch_settings.storage.redis_url,
        scripted_registry(held),
        handle_signals=False,
        group=queue.SITE,
    )
    run = asyncio.create_task(worker.async_run())
    await wait_for(held["website"].started)  # the website's publish is in the remote's hands
    await asyncio.wait_for(worker.stop(run), 20)
    assert run.done() and not worker.tasks
    # arq's shielded bookkeeping of the cancelled job ran before the pool was closed.
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not [t for t in others if "finish" in repr(t.get_coro())], others
    website = [r for r in await statuses(db) if r[2] == "website"]
    assert [r[4] for r in website] == ["sending"]  # leased still: nobody recorded an outcome
    async with db.connect() as conn:
        lease = (
            await conn.execute(
                sa.select(deliveries.c.lease_until).where(deliveries.c.channel == "website")
            )
        ).scalar_one()
    assert lease is not None

    # Once the lease runs out (3 s here), the sweeper hands it to the next worker.
    again = {"website": Script(), "feeds": Script()}
    async with running_worker(dispatch_settings, scripted_registry(again)):
        await wait_until(all_in(db, "published"), seconds=30)
    assert len(again["website"].calls) == 1
