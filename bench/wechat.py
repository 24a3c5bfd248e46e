"""WeChat benchmark: N items to the website and WeChat; W real workers publish to the sandbox.

    python bench/wechat.py [--items 500] [--workers 2] [--statuses 0] [--concurrency N]
                           [--first-look 0.05] [--rate 0 | --backlog] [--timeout 600]
                           [--database-url URL] [--redis-url URL [--flush]]

Starts what it needs, as bench/dispatch.py does (a fresh SQLite file in a temp dir or the
PostgreSQL scratch DB named, the embedded Redis or the one named), plus the local stand-in of the
WeChat API (`channels.wechat.sandbox`) in this process, and W processes running the real
`build_worker` with the real channel registry: `website` and `wechat`, the latter pointed at the
sandbox. The driver submits N items naming both channels (no body images, so a reused cover),
approves them (`--rate` items/s; 0: unpaced) and enqueues their deliveries as the web app does;
with `--backlog`, everything is approved and queued before the workers start (capacity).

The sandbox's publish jobs follow `--statuses` (default `0`: finished at the first look;
`1,0` models a WeChat that is still publishing at the first look). Prints, for the WeChat
deliveries only (the website's run too, untimed): published and failed (with `last_error`);
deliveries per second (published / (last confirmation - first approval; with `--backlog`, the
workers' start)); approve-to-confirmed p50/p99 (from SQL); then the WeChat API calls the sandbox
received: in total and per published article, by endpoint, token fetches, error answers, and a
verdict on the target (at most 4 calls per article on average, token fetches included). Figures
only; nothing passes or fails.

With `--redis-url`, the account gets an appid of its own for the run (a shared Redis may hold
another run's token or cover of the sandbox account), and its keys are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from arq.connections import ArqRedis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import channels
from bench.dispatch import (
    EDITOR,
    Proc,
    _approve_paced,
    _flush,
    _go,
    _stop_workers,
    run_gated,
    start_workers,
)
from bench.samples import CENTER, bid_item, delivery_rows
from channels.wechat.sandbox import SANDBOX_APPID, SANDBOX_SECRET, Sandbox, running_sandbox
from dispatcher.dispatch import queue
from dispatcher.dispatch.channels import build_channel
from dispatcher.dispatch.redis_server import EmbeddedRedis
from dispatcher.dispatch.worker import build_workers
from dispatcher.items import accounts, workflow
from dispatcher.rules.rulebook import build_rules
from dispatcher.rules.states import DeliveryStatus
from dispatcher.settings import load_settings
from dispatcher.storage.db import Database, migrate
from dispatcher.storage.models import deliveries

SCRIPT = str(Path(__file__).resolve())
WECHAT = "wechat"
ITEM_CHANNELS = ["website", WECHAT]
TARGET = 4.0  # WeChat API calls per article, on average, token fetches included


async def serve() -> None:
    """A worker process (`--worker`): the real registry, its settings from the environment."""
    settings = load_settings()
    await run_gated(*build_workers(settings, settings.storage.redis_url))


def _wechat_env(
    args: argparse.Namespace, base_url: str, appid: str, scratch: str
) -> dict[str, str]:
    env = {
        "GONGKAI_CHANNELS": ",".join(ITEM_CHANNELS),
        "GONGKAI_WECHAT_APPID": appid,
        "GONGKAI_WECHAT_SECRET": SANDBOX_SECRET,
        "GONGKAI_WECHAT_API_BASE": base_url,
        "GONGKAI_WECHAT_FIRST_LOOK": str(args.first_look),
    }
    if args.concurrency:  # no environment variable sets it: a config file of our own
        config = Path(scratch, "gongkai.toml")
        config.write_text(f"[dispatch.concurrency]\n{WECHAT} = {args.concurrency}\n")
        env["GONGKAI_CONFIG"] = str(config)
    return env


def _wechat_query(first: int) -> sa.Select[Any]:
    """This run's WeChat deliveries, with their version's approval time."""
    return delivery_rows(first, deliveries.c.channel == WECHAT)


async def _wait_wechat(
    db: Any, first: int, expected: int, procs: list[Proc], seconds: float
) -> list[Any]:
    """Wait (at most `seconds`) until every WeChat delivery is final; returns their rows."""
    deadline = time.monotonic() + seconds
    while True:
        async with db.connect() as conn:
            rows = list(await conn.execute(_wechat_query(first)))
        final = [r for r in rows if r.status in DeliveryStatus.final()]
        if len(final) >= expected:
            return rows
        if all(p.returncode is not None for p in procs):
            raise RuntimeError("every worker exited before the WeChat deliveries were done")
        if time.monotonic() > deadline:
            print(
                f"! timed out after {seconds:g} s: {len(final)} of {expected} WeChat "
                "deliveries final; figures cover what was confirmed"
            )
            return rows
        await asyncio.sleep(0.25)


def _report_deliveries(rows: list[Any], started: datetime | None) -> None:
    published = [r for r in rows if r.status == DeliveryStatus.PUBLISHED]
    failed = [r for r in rows if r.status == DeliveryStatus.FAILED]
    done = (DeliveryStatus.PUBLISHED, DeliveryStatus.FAILED)
    other = Counter(str(r.status) for r in rows if r.status not in done)
    others = "".join(f", {n} {status}" for status, n in other.items())
    attempts = sum(r.attempts for r in rows) / max(len(rows), 1)
    print(
        f"wechat deliveries  {len(published)} published, {len(failed)} failed{others} "
        f"of {len(rows)} ({attempts:.2f} attempts each)"
    )
    for row in failed[:10]:
        print(f"  failed item {row.item_id}: {row.last_error}")
    if len(failed) > 10:
        print(f"  ... and {len(failed) - 10} more")
    if len(published) < 2:
        print("too few published WeChat deliveries for a rate or percentiles")
        return
    first: datetime = started or min(r.approved_at for r in rows)
    span = max(r.confirmed_at for r in published) - first
    since = "the workers' start" if started else "the first approval"
    waits = sorted((r.confirmed_at - r.approved_at).total_seconds() for r in published)
    p50, p99 = (statistics.quantiles(waits, n=100, method="inclusive")[i] for i in (49, 98))
    print(
        f"wechat deliveries  {len(published) / span.total_seconds():8.1f} /s   "
        f"({len(published)} in {span.total_seconds():.1f} s from {since})"
    )
    print(
        f"approve->confirmed  p50 {p50 * 1000:.0f} ms   p99 {p99 * 1000:.0f} ms"
        f"   max {waits[-1] * 1000:.0f} ms"
        + ("   (--backlog: includes the wait for the workers to start)" if started else "")
    )


def _report_calls(sandbox: Sandbox, appid: str, published_deliveries: int) -> None:
    """What the sandbox received: calls per article, by endpoint, errors, leftovers."""
    articles = [a for a in sandbox.published(appid) if not a.deleted]
    total, n = sandbox.count(), len(articles)
    print(f"wechat API calls   {total} ({_per(total, n)} per article; {n} articles published)")
    by_endpoint = Counter(c.endpoint for c in sandbox.calls)
    for endpoint, count in by_endpoint.most_common():
        print(f"  {endpoint:32} {count:6}   {_per(count, n)} per article")
    print(f"token fetches      {sandbox.count('cgi-bin/token')}")
    errors = Counter((c.endpoint, c.errcode) for c in sandbox.calls if c.errcode)
    for (endpoint, errcode), count in errors.most_common():
        print(f"  ! {count} answers {errcode} to {endpoint}")
    titles = Counter(a.title for a in articles)
    doubled = sum(n - 1 for n in titles.values() if n > 1)
    if doubled or len(articles) != published_deliveries:
        print(
            f"  ! {len(articles)} articles for {published_deliveries} published deliveries "
            f"({doubled} duplicate titles)"
        )
    if sandbox.drafts(appid):
        print(f"  ! {len(sandbox.drafts(appid))} drafts left in the draft box")
    met = "yes" if n and total / n <= TARGET else "no"
    print(f"calls per article <= {TARGET:g}: {met} ({_per(total, n)})")


def _per(count: int, articles: int) -> str:
    return f"{count / articles:.2f}" if articles else "-"


async def _run(
    args: argparse.Namespace, env: dict[str, str], db: Any, pool: ArqRedis, procs: list[Proc]
) -> tuple[list[Any], datetime | None]:
    """Submit, approve and wait; the WeChat deliveries' rows, and when the workers started
    (`--backlog` only)."""
    settings = load_settings(env=env)
    settings.check_channels()
    rules = build_rules(settings)
    wechat = build_channel(settings, rules.catalogue, channels.REGISTRY, WECHAT, None)
    print(
        f"{args.items} items to {','.join(ITEM_CHANNELS)}, {args.workers} workers "
        f"({wechat.concurrency} WeChat deliveries in flight each), database {db.dialect}, "
        f"redis {'url' if args.redis_url else 'embedded'}, rate "
        f"{'backlog' if args.backlog else f'{args.rate:g} items/s' if args.rate > 0 else 'unpaced'}"
    )
    print(
        f"assumed: WeChat's publish jobs answer statuses {args.statuses} at successive looks "
        f"({'finished at the first look' if args.statuses[0] != 1 else 'still publishing'}), "
        f"first look {args.first_look:g} s after the submit"
    )
    await migrate(db)
    async with db.transaction() as conn:
        if await accounts.get_agency(conn, CENTER) is None:
            await accounts.add_agency(conn, CENTER, "示范市公共资源交易中心", "990100")
    await start_workers(SCRIPT, ["--worker"], args.workers, env, procs)
    ids = [
        (await workflow.submit(db, rules, EDITOR, bid_item(n, ITEM_CHANNELS)))[0]
        for n in range(args.items)
    ]
    calls: list[float] = []
    started: datetime | None = None
    if args.backlog:  # capacity: everything approved and queued first, then the workers start
        took = await _approve_paced(db, pool, ids, 0, calls)
        started = datetime.now(UTC)
        await _go(procs)
    else:
        await _go(procs)
        took = await _approve_paced(db, pool, ids, args.rate, calls)
    print(f"approved {len(ids)} items in {took:.1f} s ({len(ids) / took:.1f} items/s)")
    rows = await _wait_wechat(db, ids[0], len(ids), procs, args.timeout)
    await _stop_workers(procs)
    return rows, started


async def main(args: argparse.Namespace) -> None:
    scratch = tempfile.TemporaryDirectory(prefix="gk-bench-")
    url = args.database_url or f"sqlite+aiosqlite:///{scratch.name}/bench.db"
    embedded = None if args.redis_url else EmbeddedRedis(scratch.name)
    # A shared Redis may hold the sandbox account's token or cover from another run: a fresh appid.
    appid = SANDBOX_APPID if embedded else f"wxbench{secrets.token_hex(6)}"
    procs: list[Proc] = []
    try:
        redis_url = args.redis_url or await asyncio.to_thread(embedded.ensure)  # type: ignore[union-attr]
        async with running_sandbox(Sandbox({appid: SANDBOX_SECRET})) as running:
            running.sandbox.set_faults({"statuses": args.statuses})
            env = {
                **os.environ,
                **_wechat_env(args, running.base_url, appid, scratch.name),
                "DATABASE_URL": url,
                "REDIS_URL": redis_url,
                "GONGKAI_DATA_DIR": scratch.name,
                "GONGKAI_SWEEP_INTERVAL": "5",
            }
            db = Database(url)
            pool = await queue.connect(redis_url)
            try:
                await _flush(pool, embedded=embedded is not None, flush=args.flush)
                rows, started = await _run(args, env, db, pool, procs)
            finally:
                await _stop_workers(procs)
                if embedded is None:
                    keys = [k async for k in pool.scan_iter(f"gongkai:wechat:{appid}:*")]
                    if keys:
                        await pool.delete(*keys)
                await pool.aclose()
                await db.dispose()
            _report_deliveries(rows, started)
            published = sum(1 for r in rows if r.status == DeliveryStatus.PUBLISHED)
            _report_calls(running.sandbox, appid, published)
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        scratch.cleanup()


def _statuses(text: str) -> list[int]:
    found = [int(part) for part in text.split(",") if part.strip()]
    if not found or any(s not in range(7) for s in found):
        raise argparse.ArgumentTypeError("publish_status values 0..6, comma-separated")
    return found


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--statuses",
        type=_statuses,
        default=[0],
        help="publish_status answered at each look at a job, e.g. 1,0 (default 0: done at once)",
    )
    parser.add_argument(
        "--first-look",
        type=float,
        default=0.05,
        help="seconds before the first look at a publish job (0.05..600)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="WeChat deliveries in flight per worker (default: the channel's)",
    )
    parser.add_argument("--rate", type=float, default=0.0, help="items/s; 0 = unpaced")
    parser.add_argument(
        "--backlog", action="store_true",
        help="capacity: approve and queue everything first, then time the workers draining it",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the WeChat deliveries"
    )
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--flush", action="store_true", help="delete our queues' jobs first")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    asyncio.run(serve() if args.worker else main(args))
