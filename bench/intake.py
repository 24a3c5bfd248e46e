"""Intake benchmark: submit and approve N items through the HTTP API on a real server.

    python bench/intake.py [--items 500] [--concurrency 8] [--database-url URL]

Prints requests per second and p50/p99 latency for submit and for approve (which writes the
索引号, the outbox rows and the ledger events in one transaction). Uses a fresh SQLite file by
default, or the PostgreSQL database you name (its tables are left in place: use a scratch DB).
Figures only; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.samples import CENTER, bid_item
from dispatcher.http.app import create_app
from dispatcher.items import accounts
from dispatcher.settings import load_settings
from dispatcher.storage import ledger
from dispatcher.storage.db import Database, migrate


async def _timed(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: Any
) -> tuple[float, Any]:
    start = time.perf_counter()
    async with session.post(url, json=body, headers=headers) as response:
        data = await response.json()
        if response.status not in (200, 201):
            raise RuntimeError(f"{url}: {response.status} {data}")
    return time.perf_counter() - start, data


async def _phase(
    name: str, calls: list[tuple[str, Any]], headers: dict[str, str],
    session: aiohttp.ClientSession, concurrency: int,
) -> list[Any]:  # fmt: skip
    queue = list(enumerate(calls))
    results: list[Any] = [None] * len(calls)
    latencies: list[float] = []

    async def worker() -> None:
        while queue:
            index, (url, body) = queue.pop()
            took, results[index] = await _timed(session, url, headers, body)
            latencies.append(took)

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 600)
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100)
    print(f"{name:8} {len(calls) / elapsed:8.1f} req/s   p50 {q[49] * 1000:7.1f} ms   "
          f"p99 {q[98] * 1000:7.1f} ms")  # fmt: skip
    return results


async def main(items: int, concurrency: int, database_url: str | None) -> None:
    scratch = tempfile.TemporaryDirectory()
    url = database_url or f"sqlite+aiosqlite:///{scratch.name}/bench.db"
    settings = load_settings(env={"DATABASE_URL": url, "GONGKAI_DATA_DIR": scratch.name})
    db = Database(url)
    await migrate(db)
    async with db.transaction() as conn:
        if await accounts.get_agency(conn, CENTER) is None:
            await accounts.add_agency(conn, CENTER, "示范市公共资源交易中心", "990100")
        editor = await accounts.create_token(conn, CENTER, "editor", "bench-editor")
        approver = await accounts.create_token(conn, CENTER, "approver", "bench-approver")
    runner = web.AppRunner(create_app(settings, db))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}/api/v1"
    print(f"{items} items, concurrency {concurrency}, database {db.dialect}")
    try:
        async with aiohttp.ClientSession() as session:
            calls = [(f"{base}/items", bid_item(n)) for n in range(items)]
            created = await _phase("submit", calls, {"Authorization": f"Bearer {editor}"},
                                   session, concurrency)  # fmt: skip
            calls = [(f"{base}/items/{c['id']}/approve", None) for c in created]
            await _phase("approve", calls, {"Authorization": f"Bearer {approver}"},
                         session, concurrency)  # fmt: skip
        async with db.connect() as conn:
            start = time.perf_counter()
            report = await ledger.verify(conn)
            took = time.perf_counter() - start
        print(f"ledger verify: {report.checked} events in {took:.2f} s, ok={report.ok}")
    finally:
        await runner.cleanup()
        await db.dispose()
        scratch.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    asyncio.run(main(args.items, args.concurrency, args.database_url))
