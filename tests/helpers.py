"""What many test modules share: sample agencies and items, submitting and approving, running a
worker, and waiting for a state (bounded, never on a sleep). Fixtures are in `conftest.py`."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from channels.registry import Registry
from dispatcher.dispatch.worker import build_workers
from dispatcher.items import workflow
from dispatcher.rules.catalogue import load_catalogue
from dispatcher.rules.permissions import Actor
from dispatcher.rules.rulebook import Rules
from dispatcher.settings import Settings
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries

Client = TestClient[Any, Any]
TokenFactory = Callable[..., Awaitable[dict[str, str]]]

HOUSING = "11990100MB0000001A"  # 示范市住房和城乡建设局
CENTER = "12990100MB0000004D"  # 示范市公共资源交易中心
OTHER = "11990100MB0000003C"  # 示范市财政局
CATALOGUE = load_catalogue()  # for tests that build publications without a process's rules
EDITOR = Actor(CENTER, "editor", "张编辑")
APPROVER = Actor(CENTER, "approver", "李审核")


def bid_candidates(**changes: Any) -> dict[str, Any]:
    """A valid bidding candidates item for the trading centre (the implementer)."""
    item: dict[str, Any] = {
        "domain": "bidding",
        "category": "bid_candidates",
        "title": "示范市中心医院门诊楼改造工程中标候选人公示",
        "summary": "评标委员会推荐的中标候选人及排序",
        "body_html": "<p>现将中标候选人公示如下。</p>",
        "formed_on": "2026-11-20",
        "implementing_agency": CENTER,
        "project_code": "E9901000001234567",
        "region": "990101",
        "keywords": ["招标投标", "中标候选人"],
        "fields": {
            "candidates": [
                {
                    "rank": 1,
                    "name": "示范建设集团有限公司",
                    "bid_price": "12345678.00",
                    "project_lead": "张某",
                    "project_lead_phone": "13800000000",
                }
            ],
            "publicity_start": "2026-11-21",
            "publicity_end": "2026-11-27",
        },
        "withheld": [
            {"field": "fields.candidates[0].project_lead_phone", "basis": "personal_privacy"}
        ],
    }
    item.update(changes)
    return item


async def approve_directly(db: Database, rules: Rules, **changes: Any) -> int:
    """Submit and approve a bidding candidates item through the workflow; its id."""
    item_id, _ = await workflow.submit(db, rules, EDITOR, bid_candidates(**changes))
    await workflow.approve(db, APPROVER, item_id)
    return item_id


async def approve_via_api(api: Client, make_token: TokenFactory, **changes: Any) -> int:
    """Submit and approve a bidding candidates item through the HTTP API; its id."""
    editor = await make_token("editor", holder="编辑")
    approver = await make_token("approver", holder="审核")
    created = await api.post("/api/v1/items", json=bid_candidates(**changes), headers=editor)
    assert created.status == 201, await created.text()
    item_id: int = (await created.json())["id"]
    response = await api.post(f"/api/v1/items/{item_id}/approve", headers=approver)
    assert response.status == 200, await response.text()
    return item_id


async def wait_until(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], seconds: float = 20
) -> None:
    """Poll `check` (a plain or an async predicate) until it holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds

    async def holds() -> bool:
        found = check()
        return bool(await found) if inspect.isawaitable(found) else bool(found)

    while not await holds():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {seconds} s")
        await asyncio.sleep(0.05)


async def wait_for(event: asyncio.Event, seconds: float = 10) -> None:
    """Wait for `event`; fail after `seconds`."""
    await asyncio.wait_for(event.wait(), seconds)


async def statuses(db: Database) -> list[tuple[int, int, str, str, str]]:
    """(item, version, channel, action, status) of every delivery, in id order."""
    async with db.connect() as conn:
        rows = await conn.execute(
            sa.select(deliveries.c.item_id, deliveries.c.version, deliveries.c.channel,
                      deliveries.c.action, deliveries.c.status).order_by(deliveries.c.id)
        )  # fmt: skip
        return [tuple(r) for r in rows]  # type: ignore[misc]


def all_in(db: Database, *wanted: str) -> Callable[[], Awaitable[bool]]:
    """A check for `wait_until`: there are deliveries, and every one is in one of `wanted`."""

    async def check() -> bool:
        rows = await statuses(db)
        return bool(rows) and all(r[4] in wanted for r in rows)

    return check


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, registry: Registry) -> AsyncIterator[None]:
    """Real arq workers (one per queue) with `registry`'s channels, in this event loop, stopped
    on exit."""
    workers = build_workers(settings, settings.storage.redis_url, registry, handle_signals=False)
    tasks = [asyncio.create_task(worker.async_run()) for worker in workers]
    try:
        yield
    finally:
        for worker, task in zip(workers, tasks, strict=True):
            await worker.stop(task)


async def approved_deliveries(db: Database, rules: Rules, count: int) -> list[int]:
    """`count` approved items on the website and feeds; their delivery ids, in order."""
    for n in range(count):
        item = bid_candidates(project_code=f"E99010000000{n:05d}", channels=["website", "feeds"])
        item_id, _ = await workflow.submit(db, rules, EDITOR, item)
        await workflow.approve(db, APPROVER, item_id)
    async with db.connect() as conn:
        rows = await conn.execute(sa.select(deliveries.c.id).order_by(deliveries.c.id))
        return [r.id for r in rows]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now (for a process a test starts)."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
