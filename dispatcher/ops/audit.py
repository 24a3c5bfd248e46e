"""`gongkai audit`: the timeliness audit from the command line, as an auditor (every agency, or
the one `--agency` names): the rows (`--format table|csv|json`), `audit summary` and
`audit annual --year Y`. Output goes to stdout; the ledger's state (a full check of the chain)
ends a table and a JSON document, and goes to stderr with CSV (whose body is rows only)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from datetime import date
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from dispatcher.errors import InputError
from dispatcher.items import audit_export, audit_reports
from dispatcher.items.audit_query import AuditQuery
from dispatcher.items.timeliness import Auditor
from dispatcher.ops.commands import database
from dispatcher.ops.progress import progress
from dispatcher.rules.calendar import parse_date
from dispatcher.rules.deadlines import today
from dispatcher.rules.permissions import Actor
from dispatcher.rules.rulebook import Rules, build_rules
from dispatcher.rules.states import Role
from dispatcher.rules.verdicts import FILTERABLE, WorkdayIndex
from dispatcher.settings import Settings
from dispatcher.storage import ledger, ledger_checks
from dispatcher.storage.db import Database

CLI_AUDITOR = Actor("", Role.AUDITOR, "cli")
T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="since", metavar="YYYY-MM-DD",
                        help="deadlines on or after this day")  # fmt: skip
    parser.add_argument("--to", dest="until", metavar="YYYY-MM-DD",
                        help="deadlines on or before this day")  # fmt: skip
    parser.add_argument("--agency", help="统一社会信用代码 of one agency (default: every one)")
    parser.add_argument("--domain", help="a domain key, e.g. bidding")
    parser.add_argument("--category", help="a category key, e.g. bid_candidates")
    parser.add_argument("--status", choices=FILTERABLE, help="only rows with this verdict")
    parser.add_argument("--within", type=int, metavar="N",
                        help="with --status due: due in at most N working days")  # fmt: skip
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")


def _query(args: argparse.Namespace) -> AuditQuery:
    dates: dict[str, date | None] = {}
    for name, flag in (("since", "from"), ("until", "to")):
        text = getattr(args, name, None)
        try:
            dates[name] = parse_date(text) if text else None
        except ValueError as exc:
            raise InputError([(flag, str(exc))]) from None
    query = AuditQuery(
        since=dates["since"], until=dates["until"], agency=args.agency, domain=args.domain,
        category=args.category, status=getattr(args, "status", None),
        within=getattr(args, "within", None), limit=1000,
    )  # fmt: skip
    query.check()
    return query


def _auditor(settings: Settings) -> tuple[Rules, Auditor]:
    rules = build_rules(settings)
    return rules, Auditor(WorkdayIndex(rules.calendar), today(), rules.catalogue)


async def _ledger(db: Database) -> dict[str, Any]:
    """A full check of the chain, with progress on a terminal."""
    async with db.connect() as conn:
        total = await ledger.count(conn)
        with progress(total, "ledger verify", unit="events") as bar:
            return (await ledger_checks.full(conn, on_progress=bar.advance)).to_json()


async def _counted(batches: AsyncIterator[list[T]], what: str) -> AsyncIterator[list[T]]:
    """`batches` of rows, with progress on a terminal (their number is not known beforehand)."""
    with progress(None, what, unit="versions") as bar:
        async for batch in batches:
            bar.advance(len(batch))
            yield batch


async def _flat(batches: AsyncIterator[list[T]]) -> AsyncIterator[T]:
    async for batch in batches:
        for row in batch:
            yield row


async def _write_rows(conn: AsyncConnection, auditor: Auditor, query: AuditQuery, fmt: str) -> None:
    with audit_export.frozen_heap():
        judged = _counted(auditor.judged(conn, CLI_AUDITOR, query), "audit")
        if fmt == "csv":
            sys.stdout.write(audit_export.csv_header())
            async for batch in judged:
                sys.stdout.write(audit_export.csv_rows(batch))
        elif fmt == "json":
            rows = _counted(auditor.batches(conn, CLI_AUDITOR, query), "audit")
            await _json_rows(_flat(rows), auditor)
        else:
            print(audit_export.table([j async for j in _flat(judged)]))


def _ledger_line(state: dict[str, Any]) -> str:
    if state["verified"]:
        return f"账本核对：哈希链完整，核对至第 {state['through_event']} 条事件"
    return (f"账本核对：哈希链在第 {state['first_bad_event']} 条事件处断裂"
            f"（{state['problem']}）")  # fmt: skip


async def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    query = _query(args)
    _, auditor = _auditor(settings)
    async with database(settings) as db:
        async with db.connect_paged() as conn:
            await _write_rows(conn, auditor, query, args.format)
        state = await _ledger(db)
        if args.format == "json":
            print(f',"ledger":{json.dumps(state, ensure_ascii=False)}}}')
        elif args.format == "table":
            print(_ledger_line(state))
        else:
            print(_ledger_line(state), file=sys.stderr)
    return 0


async def _json_rows(rows: AsyncIterator[dict[str, Any]], auditor: Auditor) -> None:
    """One JSON document, written as it goes: {"as_of", "rows": [...], "ledger"} (the ledger
    is added by the caller after the rows)."""
    sys.stdout.write(f'{{"as_of":"{auditor.today.isoformat()}","rows":[')
    first = True
    async for row in rows:
        sys.stdout.write(("" if first else ",") + json.dumps(row, ensure_ascii=False))
        first = False
    sys.stdout.write("]")


async def cmd_audit_summary(args: argparse.Namespace, settings: Settings) -> int:
    query = _query(args)
    _, auditor = _auditor(settings)
    async with database(settings) as db:
        async with db.connect() as conn:
            body = await audit_reports.summarize(conn, auditor, CLI_AUDITOR, query)
        body.update(as_of=auditor.today.isoformat(), ledger=await _ledger(db))
    print(json.dumps(body, ensure_ascii=False, indent=2))
    return 0


async def cmd_audit_annual(args: argparse.Namespace, settings: Settings) -> int:
    if not 2000 <= args.year <= 2100:
        raise InputError([("year", "from 2000 to 2100")])
    rules, auditor = _auditor(settings)
    query = AuditQuery(since=date(args.year, 1, 1), until=date(args.year, 12, 31),
                       agency=args.agency, limit=1000)  # fmt: skip
    async with database(settings) as db:
        async with db.connect() as conn:
            figures = await audit_reports.summarize(conn, auditor, CLI_AUDITOR, query)
            body = await audit_reports.annual(
                conn, args.agency, args.year, rules.catalogue, figures["totals"]
            )
        body.update(as_of=auditor.today.isoformat(), ledger=await _ledger(db))
    if args.format == "json":
        print(json.dumps(body, ensure_ascii=False, indent=2))
    elif args.format == "csv":
        sys.stdout.write(audit_export.annual_csv(body))
        print(_ledger_line(body["ledger"]), file=sys.stderr)
    else:
        for section, item, value in audit_export.annual_rows(body):
            print(f"{section}\t{item}\t{value}")
        print(_ledger_line(body["ledger"]))
    return 0
