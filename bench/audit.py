"""Audit benchmark: the yearly timeliness summary and a full CSV export over a year of items.

    python bench/audit.py [--items 100000] [--database-url URL | --skip-pg] [--today 2026-12-15]
                          [--repeat 2] [--ledger full|minimal] [--profile auto|always|never]

Builds a year (2026) of N items straight into the tables (no workflow: bulk INSERTs), spread
like a real year: 8 agencies of uneven size, all six domains with some of their categories and
their real time limits (deadlines computed by `limits.due` on the official calendar), about 85%
published on time, 8% late (with a reason), some still due or overdue, ~3% withdrawn (a
withdrawal version and takedowns; a few before ever going live), ~10% revised (a version 2 with
its own deadline and publication); website, feeds and WeChat deliveries, and the ledger's events
as a valid hash chain (`ledger.append_many`): with `--ledger full` every event the workflow and
the dispatcher would write (submitted, approved, delivery created and confirmed), with `minimal`
only the website's delivery.published / delivery.withdrawn events that the audit looks up.

Then, in a fresh process (so that its peak RSS is the measurement's own), times with
`time.perf_counter`, `--repeat` times each: (1) the yearly summary, `summarize(conn, auditor,
actor, AuditQuery(since=2026-01-01, until=2026-12-31))`; (2) the summary followed by the
ledger's full verification, as `gongkai audit summary` runs them; (3) a full CSV export (header
and `csv_rows` of each of `Auditor.judged`, as `gongkai audit --format csv` and the API write
it, every row, to a temp file);
(4) the ledger's full verification alone (`ledger_checks.full`). On SQLite (a temp file) and on
PostgreSQL when reachable: a scratch database created next to the one `--database-url` names
and dropped afterwards (that database itself is not touched). Prints a line per measurement,
the peak RSS during each, and verdicts on the targets (summary < 2 s, CSV < 5 s; the slowest
run counts). `--profile auto` profiles a summary that misses its target (SQL time per query
kind and query plans; on SQLite also cProfile). Figures only; nothing passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import psutil  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.audit_data import DEC31, JAN1, YEAR, build
from dispatcher.items.audit_export import csv_header, csv_rows, frozen_heap
from dispatcher.items.audit_query import AuditQuery
from dispatcher.items.audit_reports import summarize
from dispatcher.items.timeliness import Auditor
from dispatcher.rules.calendar import WorkCalendar
from dispatcher.rules.catalogue import load_catalogue
from dispatcher.rules.permissions import Actor
from dispatcher.rules.states import Role
from dispatcher.rules.verdicts import WorkdayIndex
from dispatcher.storage import ledger_checks
from dispatcher.storage.db import Database

SCRIPT = str(Path(__file__).resolve())
URL_ENV = "GONGKAI_BENCH_AUDIT_URL"  # the measuring process's database (not on its command line)
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
AUDITOR = Actor("", Role.AUDITOR, "bench")
TARGETS = {"summary": 2.0, "csv": 5.0}


# ---------------------------------------------------------------------------------------------
# Measuring (in a process of its own)


class PeakRss:
    """The process's peak RSS while inside (sampled every 5 ms by a thread), in MiB."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss / 2**20)
            self._stop.wait(0.005)

    def __enter__(self) -> PeakRss:
        self.peak = self.process.memory_info().rss / 2**20
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _auditor(today: date) -> Auditor:
    """A fresh auditor (working-day index, catalogue: publicity periods), as the CLI makes."""
    return Auditor(WorkdayIndex(WorkCalendar.from_file(None)), today, load_catalogue())


YEARLY = AuditQuery(since=JAN1, until=DEC31, limit=1000)


async def run_summary(db: Database, auditor: Auditor) -> int:
    async with db.connect() as conn:
        body = await summarize(conn, auditor, AUDITOR, YEARLY)
    return int(body["totals"]["total"])


async def run_ledger(db: Database, _: Auditor | None = None) -> int:
    async with db.connect() as conn:
        point = await ledger_checks.full(conn)
    if not point.ok:
        raise RuntimeError(f"the ledger does not verify: {point.problem} at {point.bad_seq}")
    return point.seq


async def run_summary_and_ledger(db: Database, auditor: Auditor) -> int:
    """As `gongkai audit summary`: the summary, then a full check of the chain."""
    total = await run_summary(db, auditor)
    await run_ledger(db)
    return total


async def run_csv(db: Database, auditor: Auditor, path: str) -> int:
    """Every row (no filter), as `gongkai audit --format csv` writes them."""
    written = 0
    with open(path, "w", encoding="utf-8", newline="") as out:  # noqa: ASYNC230 - as the CLI
        out.write(csv_header())
        async with db.connect_paged() as conn:
            with frozen_heap():
                async for batch in auditor.judged(conn, AUDITOR, AuditQuery(limit=1000)):
                    out.write(csv_rows(batch))
                    written += len(batch)
    return written


async def timed(
    repeat: int, today: date, job: Callable[[Auditor], Awaitable[int]]
) -> dict[str, Any]:
    """`job` run `repeat` times, each with a fresh auditor made before the clock starts."""
    runs, peaks, count = [], [], 0
    for _ in range(repeat):
        auditor = _auditor(today)
        with PeakRss() as rss:
            started = time.perf_counter()
            count = await job(auditor)
            runs.append(time.perf_counter() - started)
        peaks.append(rss.peak)
    return {"runs": runs, "rows": count, "rss": max(peaks)}


async def measure(url: str, today: date, repeat: int, profile: bool) -> dict[str, Any]:
    db = Database(url)
    try:
        with tempfile.TemporaryDirectory(prefix="gk-bench-audit-csv-") as tmp:
            path = os.path.join(tmp, "audit.csv")
            found = {
                "rss_start": psutil.Process().memory_info().rss / 2**20,
                "summary": await timed(repeat, today, lambda a: run_summary(db, a)),
                "summary_ledger": await timed(
                    repeat, today, lambda a: run_summary_and_ledger(db, a)
                ),
                "csv": await timed(repeat, today, lambda a: run_csv(db, a, path)),
                "ledger": await timed(repeat, today, lambda a: run_ledger(db, a)),
            }
            found["csv_bytes"] = Path(path).stat().st_size  # noqa: ASYNC240 - once, at the end
        async with db.connect() as conn:
            found["totals"] = (await summarize(conn, _auditor(today), AUDITOR, YEARLY))["totals"]
        if profile:
            found["profile"] = await profile_summary(db, today)
    finally:
        await db.dispose()
    return found


# -- the profile --------------------------------------------------------------------------------


def _kind(statement: str) -> str:
    if "WITH judged" in statement:
        return "verdict counts (audit_counts)"
    if "AS own_recorded" in statement:
        return "versions page (audit_query)"
    if "GROUP BY" in statement:
        return "channel counts (audit_counts)"
    if "FROM deliveries" in statement:
        return "later publications"
    return "other"


@contextlib.contextmanager
def sql_timer(db: Database) -> Any:
    """Time spent in each kind of statement (execute and fetch: the driver fetches all), with
    the last statement of each kind and its parameters (to explain)."""
    spent: dict[str, list[float]] = {}
    last: dict[str, tuple[str, Any]] = {}
    engine = db.engine.sync_engine

    def before(conn: Any, *_: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        kind = _kind(statement)
        entry = spent.setdefault(kind, [0, 0.0])
        entry[0] += 1
        entry[1] += time.perf_counter() - conn.info.pop("bench_t0")
        last[kind] = (statement, params)

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        yield spent, last
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
        sa.event.remove(engine, "after_cursor_execute", after)


async def profile_summary(db: Database, today: date) -> str:
    """The SQL time per query kind and each query's plan (its last page); on SQLite also a
    cProfile of one summary (the main thread only: SQLite's work runs on aiosqlite's thread and
    shows as waiting in `epoll.poll`)."""
    text = io.StringIO()
    with sql_timer(db) as (spent, last):
        started = time.perf_counter()
        await run_summary(db, _auditor(today))
        wall = time.perf_counter() - started
    print(f"summary {wall:.2f} s, of which SQL (execute + fetch, per query kind):", file=text)
    for kind, (count, seconds) in sorted(spent.items(), key=lambda kv: -kv[1][1]):
        print(f"  {kind:28} {count:6} queries {seconds:8.2f} s", file=text)
    async with db.connect() as conn:
        explain = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
        for kind, (statement, params) in sorted(last.items()):
            if kind == "other":
                continue
            plan = await conn.exec_driver_sql(explain + statement, params)
            lines = [" | ".join(str(c) for c in row)[:150] for row in plan]
            print(f"plan of the last {kind}:\n    " + "\n    ".join(lines), file=text)
    if db.dialect != "sqlite":
        return text.getvalue()
    auditor = _auditor(today)
    profiler = cProfile.Profile()
    profiler.enable()
    await run_summary(db, auditor)
    profiler.disable()
    for order in ("tottime", "cumulative"):
        print(f"cProfile of one summary, top 18 by {order}:", file=text)
        stats = pstats.Stats(profiler, stream=text)
        stats.strip_dirs().sort_stats(order).print_stats(18)
    return text.getvalue()


# ---------------------------------------------------------------------------------------------
# Driving


@contextlib.asynccontextmanager
async def pg_scratch(url: str) -> AsyncIterator[str | None]:
    """A scratch database on the server `url` names (None if unreachable), dropped after."""
    base = make_url(url).set(drivername="postgresql")
    dsn = base.render_as_string(hide_password=False)
    name = f"gongkai_bench_audit_{secrets.token_hex(4)}"
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL at {base.render_as_string()} not reachable ({exc}): skipped")
        yield None
        return
    try:
        await asyncio.wait_for(conn.execute(f'CREATE DATABASE "{name}"'), 60)
        try:
            yield base.set(drivername="postgresql+asyncpg", database=name).render_as_string(
                hide_password=False
            )
        finally:
            await asyncio.wait_for(conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)'), 120)
    finally:
        await conn.close(timeout=10)


async def child(url: str, args: argparse.Namespace, profile: bool) -> dict[str, Any]:
    """The measurements, in a fresh process (bounded by `--timeout`)."""
    argv = ["--measure", "--today", args.today.isoformat(), "--repeat", str(args.repeat)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, SCRIPT, *argv, *(["--profile", "always"] if profile else []),
        env={**os.environ, URL_ENV: url}, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), args.timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"the measurements took over {args.timeout} s: killed") from None
    if proc.returncode != 0:
        raise RuntimeError(f"the measuring process failed ({proc.returncode}): see above")
    found: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    return found


def _line(label: str, name: str, found: dict[str, Any], what: str) -> None:
    runs = found["runs"]
    shown = ", ".join(f"{r:.2f}" for r in runs)
    print(f"{label:10} {name:34} {max(runs):7.2f} s  (runs {shown}; {found['rows']:,} {what}; "
          f"peak RSS {found['rss']:.0f} MiB)", flush=True)  # fmt: skip


def report(label: str, found: dict[str, Any]) -> dict[str, bool]:
    _line(label, "yearly summary", found["summary"], "versions")
    _line(label, "summary + full ledger verify (CLI)", found["summary_ledger"], "versions")
    _line(label, "full CSV export", found["csv"], "rows")
    _line(label, "ledger full verification", found["ledger"], "events")
    totals = found["totals"]
    print(f"{label:10} CSV {found['csv_bytes'] / 2**20:.1f} MiB; process RSS at start "
          f"{found['rss_start']:.0f} MiB; yearly totals: " + ", ".join(
              f"{k} {v}" for k, v in totals.items()))  # fmt: skip
    met = {}
    for key, limit in TARGETS.items():
        worst = max(found[key]["runs"])
        met[key] = worst < limit
        verdict = "target met" if met[key] else "TARGET MISSED"
        print(f"{label:10} {key} < {limit:g} s: {verdict} ({worst:.2f} s)")
    if "profile" in found:
        print(found["profile"])
    return met


async def backend(label: str, url: str, args: argparse.Namespace) -> None:
    db = Database(url)
    try:
        started = time.perf_counter()
        made = await build(db, args.items, args.today, args.seed, args.ledger == "full")
        took = time.perf_counter() - started
    finally:
        await db.dispose()
    rows = ", ".join(f"{made[k]:,} {k}" for k in ("items", "versions", "deliveries", "events"))
    fates = ", ".join(f"{k[5:]} {v:,}" for k, v in sorted(made.items()) if k.startswith("fate:"))
    print(f"{label:10} built in {took:.1f} s: {rows} (v1 fates: {fates})", flush=True)
    found = await child(url, args, args.profile == "always")
    met = report(label, found)
    if args.profile == "auto" and not met["summary"]:
        print(f"{label:10} summary missed its target: profiling it", flush=True)
        again = await child(url, argparse.Namespace(**{**vars(args), "repeat": 1}), True)
        print(again["profile"])


async def main(args: argparse.Namespace) -> None:
    print(f"{args.items:,} items over {YEAR}, audited as of {args.today}; ledger {args.ledger}; "
          f"{args.repeat} run(s) per measurement", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gk-bench-audit-") as tmp:
        await backend("sqlite", f"sqlite+aiosqlite:///{tmp}/audit.db", args)
    if args.skip_pg:
        return
    async with pg_scratch(args.database_url) as url:
        if url is not None:
            await backend("postgresql", url, args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--database-url", default=DEFAULT_PG,
                        help="a PostgreSQL server to create a scratch database on")  # fmt: skip
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--today", type=date.fromisoformat, default=date(YEAR, 12, 15),
                        help="the audit's day (Beijing); the data ends the day before")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--ledger", choices=("full", "minimal"), default="full")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto")
    parser.add_argument("--seed", type=int, default=YEAR)
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds the measurements of one database may take")  # fmt: skip
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not JAN1 < args.today <= date(YEAR + 1, 1, 1):
        parser.error(f"--today must fall in {YEAR} (or be {YEAR + 1}-01-01)")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.measure:
        result = asyncio.run(measure(os.environ[URL_ENV], arguments.today, arguments.repeat,
                                     arguments.profile == "always"))  # fmt: skip
        print(json.dumps(result))
    else:
        asyncio.run(main(arguments))
