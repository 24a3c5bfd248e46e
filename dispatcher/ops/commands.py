"""What each `gongkai` command does (`cli.py` parses the command line and reports errors).

Commands that act on items from the command line act as a local operator: whoever can run this
against the database is trusted like an admin, but the 先审后发 rule still holds — `--as` names
the person, and nobody approves what they submitted themselves. Every failure is raised as a
`GongkaiError`, which the CLI prints as `error: …`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from channels.media.settings import new_secret
from dispatcher.dispatch import deliveries, queue
from dispatcher.dispatch.worker import redis_for, run_worker, worker_groups
from dispatcher.errors import GongkaiError, InputError
from dispatcher.items import accounts, queries, workflow
from dispatcher.items.deadline_refresh import refresh_provisional
from dispatcher.ops import demo, sandbox, serve, site
from dispatcher.ops.progress import progress
from dispatcher.rules import limits
from dispatcher.rules.calendar import Deadline, parse_date
from dispatcher.rules.catalogue import describe_limit, format_catalogue, load_catalogue
from dispatcher.rules.intake import parse_json
from dispatcher.rules.permissions import Actor, publishing_agency
from dispatcher.rules.rulebook import build_rules
from dispatcher.rules.states import Role
from dispatcher.settings import Settings
from dispatcher.storage import ledger
from dispatcher.storage.db import Database, migrate, schema_revision


class CliError(GongkaiError):
    """A message for the person at the command line; exit status 1."""


def _out(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


@asynccontextmanager
async def database(settings: Settings, *, migrated: bool = True) -> AsyncIterator[Database]:
    """The configured database, reachable, disposed on the way out; it must have its schema
    unless told otherwise."""
    db = Database(settings.database_url)
    try:
        if await schema_revision(db) is None and migrated:
            raise CliError("the database has no schema yet: run `gongkai migrate` first")
        yield db
    finally:
        await db.dispose()


def _operator(agency: str, role: str, holder: str | None) -> Actor:
    return Actor(agency, role, holder or f"cli:{getpass.getuser()}")


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings, migrated=False) as db:
        await migrate(db)
        print(f"database at revision {await schema_revision(db)}")
    return 0


async def cmd_agency_add(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as db, db.transaction() as conn:
        await accounts.add_agency(conn, args.code, args.name, args.region, args.index_prefix)
    print(f"agency {args.code.upper()} registered")
    return 0


async def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as db, db.transaction() as conn:
        token = await accounts.create_token(conn, args.agency, args.role, args.holder)
    print(token)
    print(f"(a {args.role} token for {args.agency}; it is shown only this once)", file=sys.stderr)
    return 0


async def cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as db, db.connect() as conn:
        found = await accounts.list_tokens(conn, args.agency)
    if args.json:
        _out(found)
        return 0
    for t in found:
        state = f"revoked {t['revoked_at']}" if t["revoked_at"] else "active"
        print(f"{t['id']:>5}  {t['agency']}  {t['role']:<8}  {t['holder']}  {state}")
    return 0


async def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as db, db.transaction() as conn:
        await accounts.revoke_token(conn, args.id)
    print(f"token {args.id} revoked: requests with it are refused from now on")
    return 0


async def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    rules = build_rules(settings)
    try:
        data = parse_json(Path(args.file).read_bytes())  # noqa: ASYNC240 - one small file
    except OSError as exc:
        raise CliError(f"{args.file}: {exc.strerror}") from None
    category = rules.catalogue.category(str(data.get("domain")), str(data.get("category")))
    if category is None:
        raise InputError([("category", "unknown domain or category")])
    agency = publishing_agency(category, data)
    if agency is None:
        raise InputError([("(publisher)", f"{category.name}: name the agency that publishes it")])
    async with database(settings) as db:
        async with db.connect() as conn:
            if await accounts.get_agency(conn, agency) is None:
                raise CliError(f"agency {agency} is not registered (gongkai agency add)")
        who = _operator(agency, Role.EDITOR, args.as_)
        item_id, _ = await workflow.submit(db, rules, who, data, args.idempotency_key)
        async with db.connect() as conn:
            _out(await queries.item_json(conn, who, item_id))
    return 0


async def cmd_approve(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as db:
        async with db.connect() as conn:
            agency = await queries.item_agency(conn, args.id)
        who = _operator(agency, Role.APPROVER, args.as_)
        await workflow.approve(db, who, args.id)
        async with db.connect() as conn:
            _out(await queries.item_json(conn, who, args.id))
    return 0


async def cmd_catalogue(args: argparse.Namespace, settings: Settings) -> int:
    catalogue = load_catalogue()
    if args.json:
        _out(catalogue.to_json())
    else:
        print(format_catalogue(catalogue))
    return 0


async def cmd_media_secret(args: argparse.Namespace, settings: Settings) -> int:
    print(new_secret())
    return 0


DECISIONS = {"permit": "administrative_permit", "penalty": "administrative_penalty"}


async def cmd_deadline(args: argparse.Namespace, settings: Settings) -> int:
    rules = build_rules(settings)
    try:
        start = parse_date(args.start)
        if args.category is None:
            print_deadline(rules.calendar.deadline(start, args.days or 20), args.json)
            return 0
        category = rules.catalogue.find(args.category)
        lead = category.time_limit.kind == "lead"
        found = limits.due(rules.calendar, category.time_limit, start,
                           DECISIONS.get(args.decision or ""), start if lead else None)  # fmt: skip
    except ValueError as exc:
        raise CliError(str(exc)) from None
    rule = found.rule
    text = describe_limit(category) if rule is category.time_limit else rule.describe()
    if args.json:
        _out({"category": f"{category.domain or ''}/{category.key}".lstrip("/"),
              "deadline": found.date.isoformat(), "provisional": found.provisional,
              "text": text, "rule": found.to_json()})  # fmt: skip
    else:
        note = "  (provisional: no official calendar data)" if found.provisional else ""
        print(f"{found.date.isoformat()}  {category.name}: {text}（{rule.basis}）{note}")
    return 0


def print_deadline(limit: Deadline, as_json: bool) -> None:
    if as_json:
        print(json.dumps(limit.to_json()))
    else:
        note = "  (provisional: no official calendar data)" if limit.provisional else ""
        print(limit.date.isoformat() + note)


async def cmd_ledger_verify(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as db, db.connect() as conn:
        total = await ledger.count(conn)
        with progress(total, "ledger verify", unit="events") as bar:
            report = await ledger.verify(conn, on_progress=bar.advance)
    if report.ok:
        print(f"ledger intact: {report.checked} events verified")
        return 0
    print(
        f"ledger BROKEN at event {report.broken_seq}: {report.problem} "
        f"({report.checked} events before it verified)",
        file=sys.stderr,
    )
    return 1


async def _refresh_deadlines(settings: Settings) -> None:
    """The database must have its schema before anything starts; provisional deadlines are
    recomputed on the calendar as configured now (a new year's override file: each change a
    ledger event)."""
    async with database(settings) as db:
        changed = await refresh_provisional(db, build_rules(settings))
    if changed:
        print(f"{len(changed)} provisional deadline(s) recomputed on the current calendar",
              flush=True)  # fmt: skip


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    await _refresh_deadlines(settings)
    if not args.sandbox:
        await serve.serve(settings, with_worker=not args.no_worker)
        return 0
    async with sandbox.sandboxes(settings) as rehearsal:
        await serve.serve(rehearsal.settings, rehearsal.banner(), with_worker=not args.no_worker)
    return 0


async def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    groups = worker_groups(settings, args.channels, args.except_)
    await _refresh_deadlines(settings)
    await run_worker(settings, groups)
    return 0


async def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as db:
        async with db.connect() as conn:
            agency = await queries.delivery_agency(conn, args.id)
        who = _operator(agency, Role.APPROVER, args.as_)
        _, key = await deliveries.retry_by_hand(db, who, args.id)
    async with redis_for(settings) as url:
        try:
            pool = await queue.connect(url)
            try:
                queued = await queue.enqueue(pool, args.id, key, None)  # due now
            finally:
                await pool.aclose()
        except (OSError, RedisError) as exc:  # the row is pending: a sweeper will queue it
            print(f"delivery {args.id} is pending again; not queued now ({exc}): a worker's "
                  "sweeper will queue it")  # fmt: skip
            return 0
    # A job of the same key still waiting (the approval's, or a sweeper's) delivers it.
    how = "and queued" if queued else "(its job was already in the queue)"
    print(f"delivery {args.id} is pending again {how}")
    return 0


async def cmd_feeds_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    return await _rebuild(settings, "feeds", "the feeds and their state", "feeds rebuild")


async def cmd_site_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    return await _rebuild(settings, site.CHANNEL, str(site.site_path(settings)), "site rebuild")


async def _rebuild(settings: Settings, channel: str, what: str, command: str) -> int:
    """Regenerate what `channel` holds from its deliveries in the database."""
    rules = build_rules(settings)
    async with database(settings) as db:
        started = time.perf_counter()
        total = await site.count(db, channel)
        with progress(total, command, unit="publications") as bar:
            count = await site.rebuild(
                db, settings, rules.catalogue, name=channel, on_progress=bar.advance
            )
    elapsed = time.perf_counter() - started
    print(f"rebuilt {what} from {count} {channel} publications in {elapsed:.1f} s")
    return 0


async def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    await demo.run_demo(settings, serve_after=not args.no_serve)
    return 0
