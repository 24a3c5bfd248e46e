"""Dispatch benchmark: approve N items at a paced rate; W real workers deliver to K no-op channels.

    python bench/dispatch.py [--items 2000] [--workers 2] [--channels 2] [--rate 50 | --backlog]
                             [--database-url URL] [--redis-url URL [--flush]]

Starts what it needs: a fresh SQLite file in a temp dir (or the PostgreSQL DB named: a scratch DB,
tables reused), the embedded Redis (or the one named: our queues must be empty, or pass --flush),
and W processes running the real `build_worker` with channels that confirm at once. The driver
submits N items, approves item i at t0 + i/rate (`--rate 0`: unpaced) and enqueues its deliveries
as the web app does. Prints deliveries per second (deliveries / (last confirmation - first
approval)); approve-to-confirmed p50/p99 (`confirmed_at - approved_at`, from SQL); peak worker RSS
(psutil, every 0.2 s); then, on the same Redis, W plain arq workers (same max_jobs, poll_delay)
draining N×K no-op jobs enqueued up front; the ratio; and verdicts on the targets (ratio >= 0.5,
p99 < 2 s). At a paced rate (1) cannot exceed rate×K. Figures only; nothing passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import sqlalchemy as sa
from arq import func
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.samples import CENTER, bid_item
from channels.base import ChannelContext, Publication, Receipt
from channels.media.settings import new_secret
from channels.registry import ChannelSpec, make_registry, split_name
from dispatcher.dispatch import queue
from dispatcher.dispatch.redis_server import EmbeddedRedis
from dispatcher.dispatch.worker import DispatchWorker, build_workers
from dispatcher.items import accounts, workflow
from dispatcher.rules.permissions import Actor
from dispatcher.rules.rulebook import build_rules
from dispatcher.rules.states import DeliveryStatus
from dispatcher.settings import Settings, load_settings
from dispatcher.storage.db import Database, migrate
from dispatcher.storage.models import deliveries, item_versions

EDITOR = Actor(CENTER, "editor", "bench-editor")
APPROVER = Actor(CENTER, "approver", "bench-approver")
NOOP_QUEUE = "gongkai:bench-noop"
SCRIPT = str(Path(__file__).resolve())
IN_FLIGHT = 32  # approvals the driver runs at once (like a web app's concurrent requests)
Proc = asyncio.subprocess.Process


def _channel_env(k: int) -> dict[str, str]:
    names = ["website", "feeds"][:k] + [f"media:b{i}" for i in range(2, k)]
    env = {"GONGKAI_CHANNELS": ",".join(names)}
    for i in range(2, k):
        env[f"GONGKAI_MEDIA_B{i}_URL"] = "http://127.0.0.1:9/never-called"
        env[f"GONGKAI_MEDIA_B{i}_SECRET"] = new_secret()  # never used: the channel is a no-op
    return env


class NoopChannel:
    """Confirms at once: what is left is the dispatcher's own cost (SQL, Redis, arq)."""

    def __init__(self, context: ChannelContext) -> None:
        self.name = context.name

    async def publish(self, pub: Publication) -> Receipt:
        return Receipt(external_id=pub.key, confirmed_at=datetime.now(UTC))

    async def withdraw(self, pub: Publication, receipt: Receipt) -> Receipt:
        return Receipt(external_id=pub.key, confirmed_at=datetime.now(UTC))


async def _noop_job(ctx: dict[str, Any]) -> None:
    return None


def _watch_stdin(loop: asyncio.AbstractEventLoop, go: asyncio.Event) -> None:
    """First line from the driver: go. End of input (driver done or dead): shut down."""
    sys.stdin.readline()
    with contextlib.suppress(RuntimeError):  # the loop may be closed already
        loop.call_soon_threadsafe(go.set)
    sys.stdin.read()
    os.kill(os.getpid(), signal.SIGTERM)


async def serve(kind: str) -> None:
    """A worker process (`--worker gongkai|noop`), its settings from the environment."""
    settings = load_settings()
    url = settings.storage.redis_url
    if kind == "gongkai":
        kinds = dict.fromkeys(split_name(name)[0] for name in settings.channels.enabled)
        registry = make_registry(*(ChannelSpec(kind, NoopChannel) for kind in kinds))
        await run_gated(*build_workers(settings, url, registry))
        return
    else:
        worker = DispatchWorker(
            functions=[func(_noop_job, name="noop")], queue_name=NOOP_QUEUE,
            redis_settings=queue.redis_settings(url), keep_result=0, poll_delay=0.1,
            max_jobs=settings.dispatch.worker_jobs, log_results=False,
        )  # fmt: skip
    await run_gated(worker)


async def run_gated(*workers: DispatchWorker) -> None:
    """Run `workers` (a process's: one per queue), started but held until the driver says go on
    stdin (all start at once); "ready" once every one has started."""
    go, started = asyncio.Event(), [0]

    def gate(startup: Any) -> Any:
        async def ready(ctx: dict[str, Any]) -> None:
            if startup is not None:
                await startup(ctx)
            started[0] += 1
            if started[0] == len(workers):
                print("ready", flush=True)
            await go.wait()

        return ready

    for worker in workers:
        worker.on_startup = gate(worker.on_startup)
    loop = asyncio.get_running_loop()
    threading.Thread(target=_watch_stdin, args=(loop, go), daemon=True).start()
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*(worker.async_run() for worker in workers))
    finally:
        for worker in workers:
            await worker.stop()  # cancels and drains jobs first: no traceback at exit


async def start_workers(
    script: str, args: list[str], count: int, env: dict[str, str], procs: list[Proc]
) -> None:
    """Start `count` worker processes (`script` with `args`), appended to `procs` at once so
    cleanup finds them."""
    pipe = asyncio.subprocess.PIPE
    for _ in range(count):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, script, *args, env=env, stdin=pipe, stdout=pipe
        )
        procs.append(proc)


async def _go(procs: list[Proc]) -> float:
    """Wait until every worker is ready, then release them all at once; returns that time."""
    for proc in procs:
        assert proc.stdout is not None and proc.stdin is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise RuntimeError(f"worker {proc.pid} did not start (see its stderr above)")
    for proc in procs:
        proc.stdin.write(b"go\n")  # type: ignore[union-attr]
    return time.perf_counter()


async def _stop_workers(procs: list[Proc]) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.stdin.close()  # type: ignore[union-attr]
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _sample_rss(procs: list[Proc], peak: list[float]) -> None:
    watched = [psutil.Process(p.pid) for p in procs]
    while True:
        for process in watched:
            with contextlib.suppress(psutil.Error):
                peak[0] = max(peak[0], process.memory_info().rss / 2**20)
        await asyncio.sleep(0.2)


async def _flush(pool: ArqRedis, *, embedded: bool, flush: bool) -> None:
    """Empty our queues: FLUSHDB on our own Redis; on a shared one only our jobs, if asked."""
    if embedded:
        await pool.flushdb()
        return
    queues = (queue.QUEUE, NOOP_QUEUE)
    if not flush:  # a deferred cron `sweep` job is always there once a worker has run
        waiting = [i for q in queues for i in await pool.zrange(q, 0, -1) if b"sweep:" not in i]
        if waiting:
            raise SystemExit(f"{queues} hold {len(waiting)} jobs: pass --flush to delete them")
        return
    for name in queues:
        ids = [i.decode() for i in await pool.zrange(name, 0, -1)]
        prefixes = (job_key_prefix, in_progress_key_prefix, retry_key_prefix)
        keys = [p + i for i in ids for p in prefixes]
        for start in range(0, len(keys), 1000):
            await pool.delete(*keys[start : start + 1000])
        await pool.delete(name)


async def _approve_paced(
    db: Any, pool: ArqRedis, ids: list[int], rate: float, calls: list[float]
) -> float:
    """Approve item i at t0 + i/rate and enqueue its deliveries; returns the elapsed time."""
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(item_id: int) -> None:
        began = time.perf_counter()
        async with slots:
            await workflow.approve(db, APPROVER, item_id)
            async with db.connect() as conn:
                rows = await queue.item_deliveries_due(conn, item_id)
            await queue.enqueue_rows(pool, rows)
        calls.append(time.perf_counter() - began)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for i, item_id in enumerate(ids):
            if rate > 0:
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            group.create_task(one(item_id))
    return time.perf_counter() - start


async def _wait_delivered(db: Any, first: int, expected: int, procs: list[Proc]) -> None:
    unfinished = (
        DeliveryStatus.PENDING,
        DeliveryStatus.RETRYING,
        DeliveryStatus.SENDING,
        DeliveryStatus.CONFIRMING,
    )
    query = sa.select(sa.func.count()).where(
        deliveries.c.item_id >= first, deliveries.c.status.not_in(unfinished)
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        async with db.connect() as conn:
            if (await conn.execute(query)).scalar_one() >= expected:
                return
        if all(p.returncode is not None for p in procs):
            raise RuntimeError("every worker exited before the deliveries were done")
        await asyncio.sleep(0.25)
    print("! timed out after 120 s waiting for the deliveries; figures cover what was confirmed")


async def _latencies(
    db: Any, first: int, started: datetime | None = None
) -> tuple[float, list[float]]:
    """(deliveries per second, approve-to-confirmed latencies) of this run's deliveries."""
    query = (
        sa.select(deliveries.c.confirmed_at, item_versions.c.approved_at)
        .join(item_versions, sa.and_(item_versions.c.item_id == deliveries.c.item_id,
                                     item_versions.c.version == deliveries.c.version))
        .where(deliveries.c.item_id >= first, deliveries.c.confirmed_at.is_not(None))
    )  # fmt: skip
    async with db.connect() as conn:
        rows = list(await conn.execute(query))
    span = max(r.confirmed_at for r in rows) - (started or min(r.approved_at for r in rows))
    waits = sorted((r.confirmed_at - r.approved_at).total_seconds() for r in rows)
    return len(rows) / span.total_seconds(), waits


async def _noop_rate(pool: ArqRedis, env: dict[str, str], workers: int, jobs: int) -> float:
    """Plain arq on the same Redis: `jobs` no-op jobs enqueued up front, drained by W workers."""
    for start in range(0, jobs, 500):
        batch = range(start, min(jobs, start + 500))
        await asyncio.gather(*(pool.enqueue_job("noop", _queue_name=NOOP_QUEUE) for _ in batch))
    procs: list[Proc] = []
    try:
        await start_workers(SCRIPT, ["--worker", "noop"], workers, env, procs)
        began = await _go(procs)
        while time.perf_counter() < began + 300:
            if not await pool.zcard(NOOP_QUEUE):
                break
            await asyncio.sleep(0.005)
        return jobs / (time.perf_counter() - began)
    finally:
        await _stop_workers(procs)


def _verdict(name: str, met: bool, detail: str) -> None:
    print(f"{name:30} {'target met' if met else 'target missed'} ({detail})")


async def _run(args: argparse.Namespace, env: dict[str, str], db: Any, pool: ArqRedis,
               procs: list[Proc]) -> None:  # fmt: skip
    settings: Settings = load_settings(env=env)
    settings.check_channels()
    channels = list(settings.channels.enabled)
    print(f"{args.items} items, {len(channels)} channels ({','.join(channels)}), "
          f"{args.workers} workers (max_jobs {settings.dispatch.worker_jobs}), "
          f"rate {args.rate:g} items/s, database {db.dialect}, "
          f"redis {'url' if args.redis_url else 'embedded'}, sweep every 5 s")  # fmt: skip
    await migrate(db)
    async with db.transaction() as conn:
        if await accounts.get_agency(conn, CENTER) is None:
            await accounts.add_agency(conn, CENTER, "示范市公共资源交易中心", "990100")
    await start_workers(SCRIPT, ["--worker", "gongkai"], args.workers, env, procs)
    rules = build_rules(settings)
    ids = [(await workflow.submit(db, rules, EDITOR, bid_item(n, channels)))[0]
           for n in range(args.items)]  # fmt: skip
    peak, calls = [0.0], list[float]()
    if args.backlog:  # capacity: everything approved and queued first, then the workers start
        took = await _approve_paced(db, pool, ids, 0, calls)
        started: datetime | None = datetime.now(UTC)
        await _go(procs)
    else:
        started = None
        await _go(procs)
    sampler = asyncio.create_task(_sample_rss(procs, peak))
    if not args.backlog:
        took = await _approve_paced(db, pool, ids, args.rate, calls)
    a50, a99 = (statistics.quantiles(calls, n=100)[i] * 1000 for i in (49, 98))
    print(f"approved {len(ids)} items in {took:.1f} s ({len(ids) / took:.1f} items/s achieved; "
          f"approve+enqueue call p50 {a50:.0f} ms, p99 {a99:.0f} ms)")  # fmt: skip
    await _wait_delivered(db, ids[0], len(ids) * len(channels), procs)
    sampler.cancel()
    await _stop_workers(procs)
    rate, waits = await _latencies(db, ids[0], started)
    p50, p99 = (statistics.quantiles(waits, n=100)[i] for i in (49, 98))
    offered = "backlog" if args.backlog else (
        f"{args.rate * len(channels):g} /s" if args.rate > 0 else "unpaced")  # fmt: skip
    print(f"deliveries       {rate:8.1f} /s   ({len(waits)} confirmed; offered {offered})")
    print(f"approve->confirmed  p50 {p50 * 1000:.0f} ms   p99 {p99 * 1000:.0f} ms"
          f"   max {waits[-1] * 1000:.0f} ms")  # fmt: skip
    print(f"peak worker RSS  {peak[0]:8.1f} MiB")
    jobs = len(ids) * len(channels)
    noop = await _noop_rate(pool, env, args.workers, jobs)
    print(f"arq no-op jobs   {noop:8.1f} /s   ({jobs} enqueued up front, then {args.workers} "
          "workers timed from go until the queue is empty)")  # fmt: skip
    print(f"ratio            {rate / noop:8.2f}")
    if not args.backlog and 0 < args.rate * len(channels) < noop / 2:
        print("note: offered load rate×K is below half the no-op rate: try --backlog for capacity")
    _verdict("deliveries/no-op >= 0.5", rate / noop >= 0.5, f"{rate / noop:.2f}")
    load = "backlog" if args.backlog else f"{args.rate:g} items/s" if args.rate > 0 else "unpaced"
    if args.backlog:
        print("(latency in --backlog mode includes the wait for the workers to start: no verdict)")
    else:
        _verdict(f"p99 < 2 s at {load}", p99 < 2.0, f"{p99:.2f} s")


async def main(args: argparse.Namespace) -> None:
    scratch = tempfile.TemporaryDirectory(prefix="gk-bench-")
    url = args.database_url or f"sqlite+aiosqlite:///{scratch.name}/bench.db"
    embedded = None if args.redis_url else EmbeddedRedis(scratch.name)
    procs: list[Proc] = []
    try:
        redis_url = args.redis_url or await asyncio.to_thread(embedded.ensure)  # type: ignore[union-attr]
        env = {**os.environ, **_channel_env(args.channels), "DATABASE_URL": url,
               "REDIS_URL": redis_url, "GONGKAI_DATA_DIR": scratch.name,
               "GONGKAI_SWEEP_INTERVAL": "5"}  # fmt: skip
        db = Database(url)
        pool = await queue.connect(redis_url)
        try:
            await _flush(pool, embedded=embedded is not None, flush=args.flush)
            await _run(args, env, db, pool, procs)
        finally:
            await _stop_workers(procs)
            await pool.aclose()
            await db.dispose()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        scratch.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--rate", type=float, default=50.0, help="items/s; 0 = unpaced")
    parser.add_argument(
        "--backlog", action="store_true",
        help="capacity: approve and queue everything first, then time the workers draining it "
        "(the same shape as the no-op measurement)",
    )  # fmt: skip
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--flush", action="store_true", help="delete our queues' jobs first")
    parser.add_argument("--worker", choices=("gongkai", "noop"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    asyncio.run(serve(args.worker) if args.worker else main(args))
