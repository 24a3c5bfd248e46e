"""The `gongkai` command: serve, demo, migrate, agencies, tokens, items, deadlines, the ledger.

Commands that act on items from the command line act as a local operator: whoever can run this
against the database is trusted like an admin, but the 先审后发 rule still holds — `--as` names
the person, and nobody approves what they submitted themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from dispatcher.errors import GongkaiError, InputError
from dispatcher.items import accounts, queries, workflow
from dispatcher.rules.calendar import CalendarError, WorkCalendar, parse_date
from dispatcher.rules.catalogue import default_catalogue, format_catalogue
from dispatcher.rules.intake import parse_json
from dispatcher.settings import Settings, SettingsError, load_settings
from dispatcher.storage import ledger
from dispatcher.storage.db import (
    DatabaseError,
    create_engine,
    current_revision,
    migrate,
    transaction,
)

Command = Callable[[argparse.Namespace, Settings], Awaitable[int]]


class CliError(Exception):
    """A message for the user; exit status 1."""


def _out(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


async def _engine(settings: Settings, *, migrated: bool = True) -> Any:
    engine = create_engine(settings.database_url)
    if migrated:
        async with engine.connect() as conn:
            revision = await current_revision(conn)
        if revision is None:
            await engine.dispose()
            raise CliError("the database has no schema yet: run `gongkai migrate` first")
    return engine


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    engine = await _engine(settings, migrated=False)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            print(f"database at revision {await current_revision(conn)}")
    finally:
        await engine.dispose()
    return 0


async def cmd_agency_add(args: argparse.Namespace, settings: Settings) -> int:
    engine = await _engine(settings)
    try:
        async with transaction(engine) as conn:
            await accounts.add_agency(conn, args.code, args.name, args.region, args.index_prefix)
    finally:
        await engine.dispose()
    print(f"agency {args.code.upper()} registered")
    return 0


async def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    engine = await _engine(settings)
    try:
        async with transaction(engine) as conn:
            token = await accounts.create_token(conn, args.agency, args.role, args.holder)
    finally:
        await engine.dispose()
    print(token)
    print(f"(a {args.role} token for {args.agency}; it is shown only this once)", file=sys.stderr)
    return 0


def _operator(agency: str, role: str, holder: str | None) -> accounts.Actor:
    return accounts.Actor(agency, role, holder or f"cli:{getpass.getuser()}")


async def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    try:
        data = parse_json(Path(args.file).read_bytes())  # noqa: ASYNC240 - one small file
    except OSError as exc:
        raise CliError(f"{args.file}: {exc.strerror}") from None
    category = default_catalogue().category(str(data.get("domain")), str(data.get("category")))
    if category is None:
        raise InputError([("category", "unknown domain or category")])
    body = "approving_agency" if category.publisher == "approver" else "implementing_agency"
    agency = data.get(body)
    if not isinstance(agency, str):
        raise InputError([(body, f"{category.name} is published by the {body}: name it")])
    from dispatcher.http.app import build_rules

    engine = await _engine(settings)
    try:
        async with engine.connect() as conn:
            if await accounts.get_agency(conn, agency) is None:
                raise CliError(f"agency {agency} is not registered (gongkai agency add)")
        who = _operator(agency, "editor", args.as_)
        item_id, _ = await workflow.submit(
            engine, build_rules(settings), who, data, args.idempotency_key
        )
        async with engine.connect() as conn:
            _out(await queries.item_json(conn, who, item_id))
    finally:
        await engine.dispose()
    return 0


async def cmd_approve(args: argparse.Namespace, settings: Settings) -> int:
    engine = await _engine(settings)
    try:
        async with engine.connect() as conn:
            agency = await queries.item_agency(conn, args.id)
        who = _operator(agency, "approver", args.as_)
        await workflow.approve(engine, who, args.id)
        async with engine.connect() as conn:
            _out(await queries.item_json(conn, who, args.id))
    finally:
        await engine.dispose()
    return 0


async def cmd_catalogue(args: argparse.Namespace, settings: Settings) -> int:
    if args.json:
        _out(default_catalogue().to_json())
    else:
        print(format_catalogue(default_catalogue()))
    return 0


async def cmd_deadline(args: argparse.Namespace, settings: Settings) -> int:
    try:
        start = parse_date(args.start)
        limit = WorkCalendar.from_file(settings.calendar.overrides or None).deadline(
            start, args.days
        )
    except (ValueError, CalendarError) as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(limit.to_json()))
    else:
        print(
            limit.date.isoformat()
            + ("  (provisional: no official calendar data)" * limit.provisional)
        )
    return 0


async def cmd_ledger_verify(args: argparse.Namespace, settings: Settings) -> int:
    engine = await _engine(settings)
    try:
        async with engine.connect() as conn:
            report = await ledger.verify(conn)
    finally:
        await engine.dispose()
    if report.ok:
        print(f"ledger intact: {report.checked} events verified")
        return 0
    print(
        f"ledger BROKEN at event {report.broken_seq}: {report.problem} "
        f"({report.checked} events before it verified)",
        file=sys.stderr,
    )
    return 1


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from dispatcher.ops.serve import serve

    engine = await _engine(settings)
    await engine.dispose()
    await serve(settings, with_worker=not args.no_worker)
    return 0


async def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from dispatcher.dispatch.worker import run_worker

    engine = await _engine(settings)
    await engine.dispose()
    await run_worker(settings)
    return 0


async def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    from dispatcher.dispatch import deliveries, queue
    from dispatcher.dispatch.worker import redis_for

    engine = await _engine(settings)
    try:
        async with engine.connect() as conn:
            agency = await queries.delivery_agency(conn, args.id)
        who = _operator(agency, "approver", args.as_)
        await deliveries.retry_by_hand(engine, who, args.id)
        async with engine.connect() as conn:
            rows = await queue.delivery_rows(conn, [args.id])
        async with redis_for(settings) as url:
            pool = await queue.connect(url)
            try:
                queued = await queue.enqueue_rows(pool, rows)
            finally:
                await pool.aclose()
    finally:
        await engine.dispose()
    print(f"delivery {args.id} is pending again" + (" and queued" if queued else ""))
    return 0


async def cmd_site_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from dispatcher.ops.site import rebuild, site_path

    engine = await _engine(settings)
    try:
        started = time.perf_counter()
        count = await rebuild(engine, settings)
    finally:
        await engine.dispose()
    elapsed = time.perf_counter() - started
    print(f"rebuilt {site_path(settings)} from {count} website publications in {elapsed:.1f} s")
    return 0


async def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from dispatcher.ops.demo import run_demo

    await run_demo(settings, serve_after=not args.no_serve)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gongkai", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="settings file (default: ./gongkai.toml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Command, help: str, parent: Any = sub) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    srv = add("serve", cmd_serve, "serve the HTTP API, with a worker unless --no-worker")
    srv.add_argument("--no-worker", action="store_true", help="serve the API only")
    add("worker", cmd_worker, "run a worker that delivers approved items to the channels")
    rt = add("retry", cmd_retry, "put a failed delivery back in the queue")
    rt.add_argument("id", type=int)
    rt.add_argument("--as", dest="as_", metavar="NAME", help="who is asking")
    demo = add("demo", cmd_demo, "load sample agencies and items, then serve")
    demo.add_argument("--no-serve", action="store_true", help="load the samples and exit")
    add("migrate", cmd_migrate, "create or upgrade the database schema")
    cat = add("catalogue", cmd_catalogue, "print the catalogue of domains and categories")
    cat.add_argument("--json", action="store_true")
    dl = add("deadline", cmd_deadline, "the statutory deadline: N working days after START")
    dl.add_argument("start", help="YYYY-MM-DD, the day the information was formed or changed")
    dl.add_argument("--days", type=int, default=20, help="working days (default 20)")
    dl.add_argument("--json", action="store_true")

    agency = add("agency", _group_help, "manage agencies").add_subparsers(required=True)
    a = add("add", cmd_agency_add, "register an agency", agency)
    a.add_argument("--code", required=True, help="统一社会信用代码 (18 characters)")
    a.add_argument("--name", required=True)
    a.add_argument("--region", required=True, help="6-digit administrative division code")
    a.add_argument("--index-prefix", help="索引号 prefix (default: the code)")

    token = add("token", _group_help, "manage API tokens").add_subparsers(required=True)
    t = add("create", cmd_token_create, "create a token (printed once)", token)
    t.add_argument("--agency", required=True)
    t.add_argument("--role", required=True, choices=("editor", "approver", "auditor", "admin"))
    t.add_argument("--holder", help="the person holding it (for the self-approval rule)")

    s = add("submit", cmd_submit, "submit an item from a JSON file")
    s.add_argument("file")
    s.add_argument("--as", dest="as_", metavar="NAME", help="who is submitting")
    s.add_argument("--idempotency-key")
    ap = add("approve", cmd_approve, "approve an item's pending version")
    ap.add_argument("id", type=int)
    ap.add_argument("--as", dest="as_", metavar="NAME", help="who is approving")

    led = add("ledger", _group_help, "the hash-chained ledger").add_subparsers(required=True)
    add("verify", cmd_ledger_verify, "check the chain; name the first broken event", led)
    site = add("site", _group_help, "the public website").add_subparsers(required=True)
    add("rebuild", cmd_site_rebuild, "regenerate every page from the database", site)
    return parser


async def _group_help(args: argparse.Namespace, settings: Settings) -> int:  # pragma: no cover
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(path=args.config)
        status: int = asyncio.run(args.func(args, settings))
        return status
    except GongkaiError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        for path, message in exc.errors:
            print(f"  {path}: {message}", file=sys.stderr)
        return 1
    except (CliError, SettingsError, DatabaseError, accounts.AccountError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
