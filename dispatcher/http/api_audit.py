"""HTTP API for the timeliness audit: per-version verdicts, the summary, the annual figures.

An auditor sees every agency (or the one `?agency=` names); an editor or approver their own.
`GET /audit/timeliness` answers a keyset page as JSON, or with `?format=csv` every row of the
query as one CSV download (UTF-8 with BOM, Chinese headers). Every answer says whether the
ledger's chain verified, through which event (`ledger`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from aiohttp import web

from dispatcher.errors import InputError
from dispatcher.http.api_items import PREFIX
from dispatcher.http.auth import authenticated
from dispatcher.http.deps import DEPS
from dispatcher.http.responses import json_response
from dispatcher.items import audit_export, audit_reports
from dispatcher.items.audit_query import AuditQuery, parse_cursor
from dispatcher.items.timeliness import Auditor, scope
from dispatcher.rules.calendar import parse_date
from dispatcher.rules.deadlines import today
from dispatcher.rules.permissions import Actor
from dispatcher.rules.verdicts import WorkdayIndex
from dispatcher.storage import ledger_checks

FORMATS = ("json", "csv")


@dataclass
class _State:
    """What the audit keeps per app: the working-day index of its calendar, and how far this
    process has verified the ledger's chain."""

    index: WorkdayIndex | None = None
    checkpoint: ledger_checks.Checkpoint | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


STATE = web.AppKey("audit_state", _State)


def _date(request: web.Request, name: str) -> date | None:
    text = request.query.get(name)
    if text is None:
        return None
    try:
        return parse_date(text)
    except ValueError as exc:
        raise InputError([(name, str(exc))]) from None


def _int(request: web.Request, name: str, default: int | None, low: int, high: int) -> int | None:
    text = request.query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 9) or not low <= int(text) <= high:
        raise InputError([(name, f"a whole number from {low} to {high}")])
    return int(text)


def audit_query(request: web.Request) -> AuditQuery:
    q = request.query
    return AuditQuery(
        since=_date(request, "from"),
        until=_date(request, "to"),
        agency=q.get("agency"),
        domain=q.get("domain"),
        category=q.get("category"),
        status=q.get("status"),
        within=_int(request, "within", None, 0, 366),
        cursor=parse_cursor(q.get("cursor")),
        limit=_int(request, "limit", 200, 1, 1000) or 200,
    )


def _format(request: web.Request) -> str:
    fmt = request.query.get("format", "json")
    if fmt not in FORMATS:
        raise InputError([("format", "json or csv")])
    return fmt


def _auditor(request: web.Request) -> Auditor:
    state = request.app[STATE]
    if state.index is None:
        state.index = WorkdayIndex(request.app[DEPS].rules.calendar)
    return Auditor(state.index, today(), request.app[DEPS].rules.catalogue)


async def ledger_state(request: web.Request) -> dict[str, Any]:
    """The chain's state, carried forward from this process's last check."""
    state = request.app[STATE]
    async with state.lock:
        async with request.app[DEPS].db.connect() as conn:
            state.checkpoint = await ledger_checks.extend(conn, state.checkpoint)
        return state.checkpoint.to_json()


@authenticated
async def timeliness(request: web.Request, who: Actor) -> web.StreamResponse:
    query, fmt = audit_query(request), _format(request)
    auditor = _auditor(request)
    query.check()
    scope(who, query.agency)
    if fmt == "csv":
        return await _csv(request, who, query, auditor)
    async with request.app[DEPS].db.connect() as conn:
        rows, after = await auditor.rows(conn, who, query)
    nxt = f"{after[0]}.{after[1]}" if after else None
    body = {"as_of": auditor.today.isoformat(), "rows": rows, "next": nxt,
            "ledger": await ledger_state(request)}  # fmt: skip
    return json_response(body)


async def _csv(
    request: web.Request, who: Actor, query: AuditQuery, auditor: Auditor
) -> web.StreamResponse:
    state = await ledger_state(request)
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="timeliness-{auditor.today}.csv"',
        "X-Ledger-Verified": "true" if state["verified"] else "false",
        "X-Ledger-Through-Event": str(state["through_event"]),
    })  # fmt: skip
    await response.prepare(request)
    await response.write(audit_export.csv_header().encode("utf-8"))
    async with request.app[DEPS].db.connect_paged() as conn:
        with audit_export.frozen_heap():
            async for batch in auditor.judged(conn, who, query):
                await response.write(audit_export.csv_rows(batch).encode("utf-8"))
    await response.write_eof()
    return response


@authenticated
async def summary(request: web.Request, who: Actor) -> web.Response:
    query = audit_query(request)
    auditor = _auditor(request)
    async with request.app[DEPS].db.connect() as conn:
        body = await audit_reports.summarize(conn, auditor, who, query)
    body.update(as_of=auditor.today.isoformat(), ledger=await ledger_state(request))
    return json_response(body)


@authenticated
async def annual(request: web.Request, who: Actor) -> web.StreamResponse:
    year = _int(request, "year", None, 2000, 2100)
    if year is None:
        raise InputError([("year", "required, e.g. 2026")])
    fmt = _format(request)
    agency = scope(who, request.query.get("agency"))
    auditor = _auditor(request)
    query = AuditQuery(since=date(year, 1, 1), until=date(year, 12, 31), agency=agency)
    deps = request.app[DEPS]
    async with deps.db.connect() as conn:
        figures = await audit_reports.summarize(conn, auditor, who, query)
        body = await audit_reports.annual(
            conn, agency, year, deps.rules.catalogue, figures["totals"]
        )
    body.update(as_of=auditor.today.isoformat(), ledger=await ledger_state(request))
    if fmt == "csv":
        return web.Response(
            body=audit_export.annual_csv(body).encode("utf-8"),
            headers={"Content-Type": "text/csv; charset=utf-8",
                     "Content-Disposition": f'attachment; filename="annual-{year}.csv"'},
        )  # fmt: skip
    return json_response(body)


def add_routes(app: web.Application) -> None:
    app[STATE] = _State()
    app.router.add_get(PREFIX + "/audit/timeliness", timeliness)
    app.router.add_get(PREFIX + "/audit/summary", summary)
    app.router.add_get(PREFIX + "/audit/annual", annual)
