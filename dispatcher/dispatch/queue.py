"""The arq queues: one job per delivery, its id the delivery key, so a duplicate is refused.

Two queues, one per group of channels: the channels that write files where their worker runs
(`Capability.LOCAL_FILES`: the website and the feeds, into the site directory) have `SITE`;
every other channel (remote APIs) has `REMOTE`. A worker takes one group's jobs, or both with
one arq worker per queue (`worker.build_workers`), so it never takes a job it cannot do.

Redis only carries work; SQL says what is due. Enqueueing is best effort: if Redis is away, the
sweeper enqueues every due delivery when it is back. Jobs keep no result (`keep_result=0`), so a
finished delivery's id can be enqueued again (a retry by hand).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncConnection

from channels import REGISTRY
from channels.registry import Capability, spec_for
from dispatcher.dispatch.claims import delivery_key
from dispatcher.dispatch.due import due_by, wait_before
from dispatcher.dispatch.redis_server import disk_problem
from dispatcher.rules.states import DeliveryStatus
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries

log = logging.getLogger(__name__)
JOB = "deliver"
QUEUE = "gongkai:deliveries"  # the remote channels' group
SITE_QUEUE = "gongkai:deliveries:site"  # the channels that write the site directory
SITE, REMOTE = "site", "remote"
GROUPS = {SITE: SITE_QUEUE, REMOTE: QUEUE}


def group_of(channel: str) -> str:
    """The group of an enabled channel name (`media:xinhua` is the `media` entry's)."""
    spec = spec_for(REGISTRY, channel)
    return SITE if spec is not None and spec.has(Capability.LOCAL_FILES) else REMOTE


def queue_for(channel: str) -> str:
    return GROUPS[group_of(channel)]


def channel_of(key: str) -> str:
    """The channel of a delivery key (`item:version:channel`; a channel name may hold ":")."""
    return key.split(":", 2)[2]


def redis_settings(url: str) -> RedisSettings:
    """arq settings for a redis:// or unix:// URL; a short retry so a dead Redis fails fast."""
    settings = RedisSettings.from_dsn(url)
    settings.conn_retries = 2
    return settings


async def connect(url: str) -> ArqRedis:
    """A pool that has answered a PING (fails if Redis is unreachable)."""
    return await create_pool(redis_settings(url), default_queue_name=QUEUE)


def connect_lazily(url: str) -> ArqRedis:
    """A pool that connects on first use: a web app starts, and stays up, while Redis is away."""
    connections = ConnectionPool.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    return ArqRedis(connections, default_queue_name=QUEUE)


async def enqueue(pool: ArqRedis, delivery_id: int, key: str, at: datetime | None) -> bool:
    """Queue one delivery's job (deferred to `at` unless it is due); False if that job is
    already queued."""
    defer = at if wait_before(at, datetime.now(UTC)) is not None else None
    job = await pool.enqueue_job(
        JOB, delivery_id, _job_id=key, _defer_until=defer, _queue_name=queue_for(channel_of(key))
    )
    return job is not None


SWEPT_KEY = "gongkai:swept_at"  # when a worker's sweeper last ran (Unix seconds)


async def mark_swept(pool: ArqRedis) -> None:
    await pool.set(SWEPT_KEY, repr(time.time()))


async def swept_ago(pool: ArqRedis) -> float | None:
    """Seconds since a worker's sweeper last ran; None if none ever did on this Redis."""
    raw = await pool.get(SWEPT_KEY)
    return None if raw is None else max(0.0, time.time() - float(raw))


async def disk_trouble(pool: ArqRedis) -> str | None:
    """What Redis says is wrong with its disk (`redis_server.disk_problem`), or None."""
    return disk_problem(await pool.info("persistence"))


async def hurry(pool: ArqRedis, keys: list[str]) -> int:
    """Run these jobs, already queued for later (a confirmation's next look), now: arq keeps
    its queue as a sorted set scored by when each job runs (tests/test_worker.py checks it)."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    by_queue: dict[str, list[str]] = {}
    for key in keys:
        by_queue.setdefault(queue_for(channel_of(key)), []).append(key)
    hurried = 0
    for name, found in by_queue.items():
        hurried += int(await pool.zadd(name, dict.fromkeys(found, now_ms), xx=True, ch=True))
    return hurried


async def depth(pool: ArqRedis) -> int:
    """Jobs waiting in both queues."""
    return sum([int(await pool.zcard(name)) for name in GROUPS.values()])


async def enqueue_rows(pool: ArqRedis | None, rows: list[Any]) -> int:
    """Best-effort enqueue of delivery rows (id, item_id, version, channel, next_attempt_at)."""
    if pool is None:
        return 0
    queued = 0
    try:
        for row in rows:
            key = delivery_key(row.item_id, row.version, row.channel)
            queued += await enqueue(pool, row.id, key, row.next_attempt_at)
    except (RedisError, OSError) as exc:
        log.warning("could not enqueue deliveries (the sweeper will): %s", exc)
    return queued


async def item_deliveries_due(conn: AsyncConnection, item_id: int) -> list[Any]:
    """The item's deliveries that wait for a job: what to enqueue after approve or withdraw."""
    rows = await conn.execute(
        sa.select(deliveries).where(
            deliveries.c.item_id == item_id,
            deliveries.c.status.in_((DeliveryStatus.PENDING, DeliveryStatus.RETRYING)),
        )
    )
    return list(rows)


async def delivery_rows(conn: AsyncConnection, ids: list[int]) -> list[Any]:
    return list(await conn.execute(sa.select(deliveries).where(deliveries.c.id.in_(ids))))


async def due(conn: AsyncConnection, horizon: timedelta, limit: int = 5000) -> list[Any]:
    """Deliveries due before now + horizon, and those whose worker's lease ran out."""
    now = datetime.now(UTC)
    rows = await conn.execute(
        sa.select(deliveries)
        .where(due_by(now + horizon, now))
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
    )
    return list(rows)


async def sweep(db: Database, pool: ArqRedis, horizon: timedelta) -> int:
    """Enqueue every due delivery whose job is missing; returns how many were queued."""
    async with db.connect() as conn:
        rows = await due(conn, horizon)
    return await enqueue_rows(pool, rows)
