"""News-media benchmark: N items to K outlets on W workers; local outlets that answer at once.

    python bench/media.py [--items 1000] [--workers 2] [--outlets 3]
                          [--database-url URL] [--redis-url URL [--flush]]

Starts what bench/dispatch.py starts (a fresh SQLite file per run in a temp dir, or the PostgreSQL
scratch DB named; the embedded Redis, or the one named), plus a local outlet server in a process
of its own (aiohttp on 127.0.0.1, a path per outlet) that answers every POST at once with 200
`{"id", "url"}` and counts the `webhook-id`s it receives. Two runs, each in backlog mode (all N
items approved and their deliveries queued first, then W workers released at once):

1. media: W processes running the real `build_worker` with the real news-media channel
   (`channels.media.SPEC`) for `media:a`, `media:b` … (K of them), each with its own URL on the
   outlet server, a fresh `whsec_` secret and rate 0 (pacing is not the limit);
2. instant: the same channel names, settings and items, on bench/dispatch.py's workers, whose
   no-op channels confirm at once.

The website (the first platform) can be neither disabled nor left out of an item, so in both runs
every item names it too and it is a no-op channel; what is measured is the outlets' deliveries
only (N×K per run): deliveries per second = published outlet deliveries / (last confirmation -
the workers' release), the definition bench/dispatch.py uses with --backlog; approve-to-confirmed
p50/p99 (`confirmed_at - approved_at`, from SQL; in backlog mode it includes the wait for the
workers' release); the CPU the workers (and the outlets' server) used while draining. Prints
both rates, the ratio media/instant, whether the outlets received every delivery exactly once,
and a verdict on the target (ratio >= 0.7). Figures only; nothing passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import string
import sys
import tempfile
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import sqlalchemy as sa
from aiohttp import web
from arq.connections import ArqRedis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import dispatch
from bench.dispatch import (
    EDITOR,
    NoopChannel,
    Proc,
    _approve_paced,
    _flush,
    _go,
    _sample_rss,
    _stop_workers,
    _verdict,
    _wait_delivered,
    run_gated,
    start_workers,
)
from bench.samples import CENTER, bid_item, delivery_rows
from channels import FIRST_PLATFORM, media
from channels.media.settings import new_secret
from channels.registry import ChannelSpec, make_registry
from dispatcher.dispatch import queue
from dispatcher.dispatch.redis_server import EmbeddedRedis
from dispatcher.dispatch.worker import build_workers
from dispatcher.items import accounts, workflow
from dispatcher.rules.rulebook import build_rules
from dispatcher.rules.states import DeliveryStatus
from dispatcher.settings import load_settings
from dispatcher.storage.db import Database, migrate
from dispatcher.storage.models import deliveries

SCRIPT = str(Path(__file__).resolve())
TARGET = 0.7  # media deliveries/s over the instant channel's, same run otherwise


@dataclass
class Run:
    """One run's outlet deliveries (the website's left out)."""

    label: str
    rows: list[Any]
    started: datetime
    peak_rss: float
    worker_cpu: float  # seconds of the workers' CPU from their release until done
    outlet_cpu: float  # and of the outlets' server's

    @property
    def published(self) -> list[Any]:
        return [r for r in self.rows if r.status == DeliveryStatus.PUBLISHED]

    @property
    def rate(self) -> float:
        done = self.published
        if not done:
            return 0.0
        span: float = (max(r.confirmed_at for r in done) - self.started).total_seconds()
        return len(done) / span


# -- the outlets' server (a process of its own) -----------------------------------------------


async def outlet() -> None:
    """`--outlet`: answer every POST 200 at once; print the port, then, when stdin ends, the
    `webhook-id`s received by path as JSON."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the driver stops us (stdin ends)
    received: dict[str, list[str]] = defaultdict(list)

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        key = request.headers.get("webhook-id", "")
        received[request.path].append(key)
        n = len(received[request.path])
        return web.json_response({"id": f"{n}", "url": f"http://127.0.0.1{request.path}/{n}"})

    app = web.Application()
    app.router.add_post("/{outlet}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    ended, loop = asyncio.Event(), asyncio.get_running_loop()

    def watch() -> None:
        sys.stdin.read()
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(ended.set)

    threading.Thread(target=watch, daemon=True).start()
    print(runner.addresses[0][1], flush=True)
    try:
        await ended.wait()
        sys.stdout.write(json.dumps(received))
        sys.stdout.flush()
    finally:
        await runner.cleanup()


async def start_outlet(procs: list[Proc]) -> int:
    """Start the outlets' server (appended to `procs` for cleanup); returns its port."""
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        sys.executable, SCRIPT, "--outlet", stdin=pipe, stdout=pipe
    )
    procs.append(proc)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if not line.strip().isdigit():
        raise RuntimeError("the outlet server did not start (see its stderr above)")
    return int(line)


async def outlet_report(proc: Proc) -> dict[str, list[str]]:
    """End the outlets' server; the `webhook-id`s it received, by path."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    text = await asyncio.wait_for(proc.stdout.read(), 30)
    await _stop_workers([proc])
    found: dict[str, list[str]] = json.loads(text or b"{}")
    return found


# -- the workers --------------------------------------------------------------------------------


async def serve() -> None:
    """A worker process (`--worker`): the real news-media channel; the website a no-op."""
    settings = load_settings()
    registry = make_registry(ChannelSpec(FIRST_PLATFORM, NoopChannel), media.SPEC)
    await run_gated(*build_workers(settings, settings.storage.redis_url, registry))


def _outlets(k: int) -> list[str]:
    return [f"media:{string.ascii_lowercase[i]}" for i in range(k)]


def _media_env(k: int, port: int) -> dict[str, str]:
    env = {"GONGKAI_CHANNELS": ",".join([FIRST_PLATFORM, *_outlets(k)])}
    for name in _outlets(k):
        sub = name.partition(":")[2]
        prefix = f"GONGKAI_MEDIA_{sub.upper()}_"
        env[prefix + "URL"] = f"http://127.0.0.1:{port}/{sub}"
        env[prefix + "SECRET"] = new_secret()
        env[prefix + "RATE"] = "0"
    return env


# -- one run ------------------------------------------------------------------------------------


def _outlet_rows(first: int) -> sa.Select[Any]:
    return delivery_rows(first, deliveries.c.channel != FIRST_PLATFORM)


def _cpu(procs: list[Proc]) -> float:
    """User and system CPU seconds the processes have used so far."""
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(proc.pid).cpu_times()
            total += times.user + times.system
    return total


async def one_run(
    label: str,
    worker: list[str],
    args: argparse.Namespace,
    env: dict[str, str],
    pool: ArqRedis,
    server: list[Proc],
) -> Run:
    """Submit N items, approve and queue them all, release W workers; wait until done."""
    settings = load_settings(env=env)
    settings.check_channels()
    names = list(settings.channels.enabled)
    db = Database(env["DATABASE_URL"])
    procs: list[Proc] = []
    try:
        await migrate(db)
        async with db.transaction() as conn:
            if await accounts.get_agency(conn, CENTER) is None:
                await accounts.add_agency(conn, CENTER, "示范市公共资源交易中心", "990100")
        await start_workers(worker[0], worker[1:], args.workers, env, procs)
        rules = build_rules(settings)
        ids = [(await workflow.submit(db, rules, EDITOR, bid_item(n, names)))[0]
               for n in range(args.items)]  # fmt: skip
        took = await _approve_paced(db, pool, ids, 0, [])
        started = datetime.now(UTC)
        await _go(procs)
        cpu = (_cpu(procs), _cpu(server))
        peak = [0.0]
        sampler = asyncio.create_task(_sample_rss(procs, peak))
        await _wait_delivered(db, ids[0], len(ids) * len(names), procs)
        sampler.cancel()
        used = (_cpu(procs) - cpu[0], _cpu(server) - cpu[1])
        await _stop_workers(procs)
        async with db.connect() as conn:
            rows = list(await conn.execute(_outlet_rows(ids[0])))
        print(f"{label:8} approved and queued {len(ids)} items in {took:.1f} s, then drained")
        return Run(label, rows, started, peak[0], *used)
    finally:
        await _stop_workers(procs)
        await db.dispose()


def report(run: Run) -> None:
    published = run.published
    failed = [r for r in run.rows if r.status == DeliveryStatus.FAILED]
    other = len(run.rows) - len(published) - len(failed)
    print(f"{run.label:8} {run.rate:8.1f} /s   ({len(published)} published, {len(failed)} failed, "
          f"{other} other, of {len(run.rows)} outlet deliveries; "
          f"peak worker RSS {run.peak_rss:.0f} MiB)")  # fmt: skip
    per = run.worker_cpu / max(len(run.rows), 1) * 1000
    print(f"         CPU while draining: workers {run.worker_cpu:.1f} s ({per:.2f} ms per outlet "
          f"delivery, the website's included), outlets' server {run.outlet_cpu:.1f} s")  # fmt: skip
    for row in failed[:5]:
        print(f"  ! {row.channel} item {row.item_id}: {row.last_error}")
    if len(published) >= 2:
        waits = sorted((r.confirmed_at - r.approved_at).total_seconds() for r in published)
        p50, p99 = (statistics.quantiles(waits, n=100, method="inclusive")[i] for i in (49, 98))
        print(f"         approve->confirmed p50 {p50 * 1000:.0f} ms   p99 {p99 * 1000:.0f} ms"
              f"   max {waits[-1] * 1000:.0f} ms (includes the wait for the release)")  # fmt: skip


def check_received(received: dict[str, list[str]], rows: list[Any]) -> None:
    """Did every outlet receive each of its deliveries exactly once (by `webhook-id`)?"""
    expected = {f"{r.item_id}:{r.version}:{r.channel}" for r in rows}
    got = Counter(key for keys in received.values() for key in keys)
    wrong_path = sum(
        1
        for path, keys in received.items()
        for key in keys
        if not key.endswith(":media:" + path[1:])
    )
    missing = len(expected - got.keys())
    twice = sum(n - 1 for n in got.values() if n > 1)
    unknown = len(got.keys() - expected)
    per = ", ".join(f"{path[1:]} {len(keys)}" for path, keys in sorted(received.items()))
    ok = not (missing or twice or unknown or wrong_path)
    print(f"outlets  received {got.total()} POSTs ({per}): "
          + ("each delivery exactly once" if ok else f"! {missing} missing, {twice} repeats, "
             f"{unknown} unknown ids, {wrong_path} at another outlet's URL"))  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    scratch = tempfile.TemporaryDirectory(prefix="gk-bench-")
    embedded = None if args.redis_url else EmbeddedRedis(scratch.name)
    server: list[Proc] = []
    try:
        redis_url = args.redis_url or await asyncio.to_thread(embedded.ensure)  # type: ignore[union-attr]
        port = await start_outlet(server)
        base = {**os.environ, **_media_env(args.outlets, port), "REDIS_URL": redis_url,
                "GONGKAI_DATA_DIR": scratch.name, "GONGKAI_SWEEP_INTERVAL": "5"}  # fmt: skip
        settings = load_settings(env=base)
        print(f"{args.items} items to {args.outlets} outlets ({','.join(_outlets(args.outlets))}; "
              f"each item names the website too, a no-op), {args.workers} workers (max_jobs "
              f"{settings.dispatch.worker_jobs}), backlog, database "
              f"{'url' if args.database_url else 'sqlite, fresh per run'}, "
              f"redis {'url' if args.redis_url else 'embedded'}")  # fmt: skip
        pool = await queue.connect(redis_url)
        runs: dict[str, Run] = {}
        try:
            workers = {"media": [SCRIPT, "--worker"],
                       "instant": [dispatch.SCRIPT, "--worker", "gongkai"]}  # fmt: skip
            for label, worker in workers.items():
                await _flush(pool, embedded=embedded is not None, flush=args.flush)
                url = args.database_url or f"sqlite+aiosqlite:///{scratch.name}/{label}.db"
                env = {**base, "DATABASE_URL": url}
                runs[label] = await one_run(label, worker, args, env, pool, server)
        finally:
            await pool.aclose()
        received = await outlet_report(server[0])
        for run in runs.values():
            report(run)
        check_received(received, runs["media"].rows)
        ratio = runs["media"].rate / runs["instant"].rate if runs["instant"].rate else 0.0
        print(f"ratio    {ratio:8.2f}   (media / instant)")
        _verdict(f"media/instant >= {TARGET}", ratio >= TARGET, f"{ratio:.2f}")
    finally:
        await _stop_workers(server)
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        scratch.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--outlets", type=int, default=3, choices=range(1, 27), metavar="1..26")
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--flush", action="store_true", help="delete our queues' jobs first")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--outlet", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    asyncio.run(serve() if args.worker else outlet() if args.outlet else main(args))
