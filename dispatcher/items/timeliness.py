"""The timeliness audit's rows: every item version with its deadline, the rule behind it, when
each channel really published it, the working days that took, and the verdict (`verdicts.py`).

Which versions: every original and revision (submitted ones too: an item waiting for approval
near its deadline is what an auditor wants to see), and the withdrawal of an administrative
penalty decision (3 working days). A version is judged by its own website publication, or, when
a later version went live first (a correction approved before it was published), by that one:
the information was disclosed, corrected. Rows come in (item, version) order, by keyset pages;
`period` filters on the deadline day. Each row says whether its website time matches the time
its ledger event recorded (`ledger`: "ok", "mismatch", "missing").
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from channels import FIRST_PLATFORM
from dispatcher.errors import InputError, PermissionDenied
from dispatcher.rules.catalogue import Catalogue
from dispatcher.rules.deadlines import deadline_end
from dispatcher.rules.limits import shortest_end
from dispatcher.rules.permissions import Actor, require
from dispatcher.rules.states import Action, DeliveryStatus, Role, VersionKind
from dispatcher.rules.verdicts import (
    FILTERABLE,
    Verdict,
    WorkdayIndex,
    clock_start,
    judge,
    penalty_rule_json,
    penalty_withdrawal_due,
)
from dispatcher.storage.models import agencies, deliveries, events, item_versions, items

MAX_PAGE = 1000
SCAN = 1000  # versions read per round while filling a page
PENALTY = "administrative_penalty"
EVERY_AGENCY = (Role.AUDITOR, Role.ADMIN)  # 监督检查: every agency; others their own


@dataclass(frozen=True)
class AuditQuery:
    since: date | None = None  # deadline on or after
    until: date | None = None  # deadline on or before
    agency: str | None = None
    domain: str | None = None
    category: str | None = None
    status: str | None = None  # a verdict: on_time, late, due, overdue
    within: int | None = None  # with `due`: due in at most this many working days
    cursor: tuple[int, int] | None = None  # (item, version) after which the page starts
    limit: int = 200

    def check(self) -> None:
        problems = []
        if self.status is not None and self.status not in FILTERABLE:
            problems.append(("status", f"one of {', '.join(FILTERABLE)}"))
        if not 1 <= self.limit <= MAX_PAGE:
            problems.append(("limit", f"between 1 and {MAX_PAGE}"))
        if self.since and self.until and self.since > self.until:
            problems.append(("from", "must not be after `to`"))
        if self.within is not None and not 0 <= self.within <= 366:
            problems.append(("within", "between 0 and 366 working days"))
        if problems:
            raise InputError(problems)


def parse_cursor(text: str | None) -> tuple[int, int] | None:
    """ "item.version" (as a page's `next` gives it) -> (item, version)."""
    if text is None:
        return None
    item, _, version = text.partition(".")
    if not (item.isascii() and item.isdigit() and version.isascii() and version.isdigit()):
        raise InputError([("cursor", "the `next` value of the previous page")])
    if len(item) > 15 or len(version) > 9:
        raise InputError([("cursor", "the `next` value of the previous page")])
    return int(item), int(version)


def scope(actor: Actor, agency: str | None) -> str | None:
    """The agency the actor may audit: any (None: all) for an auditor, else only their own."""
    require(actor, "read")
    if actor.role in EVERY_AGENCY:
        return agency
    if agency is not None and agency != actor.agency_code:
        raise PermissionDenied("an editor or approver audits their own agency only")
    return actor.agency_code


def _versions(
    query: AuditQuery,
    agency: str | None,
    after: tuple[int, int] | None,
    publicity: Sequence[str] = (),
    *,
    lean: bool = False,
) -> Any:
    """The versions to judge, in (item, version) order; their structured fields only where the
    category has a minimum publicity period (`publicity`: those category keys)."""
    v = item_versions
    judged = sa.or_(
        v.c.kind != VersionKind.WITHDRAWAL,
        v.c.decision == PENALTY,
    )
    stmt = (
        sa.select(
            v.c.item_id,
            v.c.version,
            v.c.kind,
            v.c.status,
            v.c.title,
            v.c.decision,
            v.c.deadline,
            v.c.deadline_provisional,
            *(
                (
                    v.c.deadline_rule["kind"].as_string().label("rule_kind"),
                    v.c.deadline_rule["start"].as_string().label("rule_start"),
                )
                if lean
                else (v.c.deadline_rule,)
            ),
            v.c.late_reason,
            v.c.changed_on,
            v.c.formed_on,
            items.c.agency_code,
            items.c.domain,
            items.c.category,
            items.c.index_no,
            items.c.status.label("item_status"),
            items.c.latest_version,
            agencies.c.name.label("agency_name"),
            sa.type_coerce(
                sa.case((items.c.category.in_(publicity), v.c.fields), else_=sa.null())
                if publicity
                else sa.null(),
                sa.JSON(),
            ).label("fields"),
        )
        .join(items, items.c.id == v.c.item_id)
        .join(agencies, agencies.c.code == items.c.agency_code)
        .where(judged)
        .order_by(v.c.item_id, v.c.version)
    )
    for column, value in ((items.c.agency_code, agency), (items.c.domain, query.domain),
                          (items.c.category, query.category)):  # fmt: skip
        if value is not None:
            stmt = stmt.where(column == value)
    # A withdrawal is filtered on the day its clock started (its deadline is computed later).
    withdrawal = v.c.kind == VersionKind.WITHDRAWAL
    day = sa.case((withdrawal, sa.func.coalesce(v.c.changed_on, v.c.formed_on)),
                  else_=v.c.deadline)  # fmt: skip
    if query.since is not None:
        stmt = stmt.where(day >= query.since)
    if query.until is not None:
        stmt = stmt.where(day <= query.until)
    if after is not None:  # a row value: both databases walk the primary key from there
        stmt = stmt.where(sa.tuple_(v.c.item_id, v.c.version) > sa.tuple_(*after))
    return stmt


class _Live(NamedTuple):
    id: int
    item_id: int
    version: int
    channel: str
    action: str
    status: str
    confirmed_at: datetime


async def _live(conn: AsyncConnection, first: int, last: int) -> list[_Live]:
    """Every confirmed delivery of the items `first`..`last` (a range, so the unique index on
    (item, version, channel) is walked; the state is checked here, not by the database, which
    would otherwise pick the state index and read every confirmed delivery)."""
    confirmed = set(DeliveryStatus.confirmed())
    rows = await conn.execute(
        sa.select(
            deliveries.c.id, deliveries.c.item_id, deliveries.c.version, deliveries.c.channel,
            deliveries.c.action, deliveries.c.status, deliveries.c.confirmed_at,
        ).where(deliveries.c.item_id.between(first, last))
    )  # fmt: skip
    return [_Live(*row) for row in rows if row[5] in confirmed]


async def _recorded(conn: AsyncConnection, first: int, last: int) -> dict[int, str | None]:
    """Delivery id -> the confirmation time its ledger event recorded (the newest event of
    each delivery, if it has several), for the items `first`..`last`."""
    rows = await conn.execute(
        sa.select(events.c.delivery_id, events.c.data)
        .where(
            events.c.item_id.between(first, last),
            events.c.kind.in_(("delivery.published", "delivery.withdrawn")),
        )
        .order_by(events.c.item_id, events.c.seq)
    )
    found: dict[int, str | None] = {}
    for delivery_id, data in rows:
        try:
            found[delivery_id] = json.loads(data).get("confirmed_at")
        except (ValueError, AttributeError):
            found[delivery_id] = None
    return found


def _ledger_state(delivery: Any, recorded: dict[int, str | None]) -> str | None:
    if delivery is None:
        return None
    if delivery.id not in recorded:
        return "missing"
    at = recorded[delivery.id]
    try:
        same = at is not None and datetime.fromisoformat(at) == delivery.confirmed_at
    except ValueError:
        same = False
    return "ok" if same else "mismatch"


class Auditor:
    """Judges versions on one calendar as of `today` (Beijing); with the catalogue, also their
    publicity periods (公示期) against the category's minimum."""

    def __init__(
        self, index: WorkdayIndex, today: date, catalogue: Catalogue | None = None
    ) -> None:
        self.index = index
        self.today = today
        self.catalogue = catalogue
        self._publicity_keys = sorted(
            {c.key for d in catalogue.domains.values() for c in d.categories.values()
             if c.min_publicity is not None}
        ) if catalogue is not None else []  # fmt: skip

    async def rows(
        self, conn: AsyncConnection, actor: Actor, query: AuditQuery
    ) -> tuple[list[dict[str, Any]], tuple[int, int] | None]:
        """One page of rows (at most `query.limit`) and the cursor of the next: given whenever
        the page is full (with a verdict filter the next page may then be empty)."""
        page: list[dict[str, Any]] = []
        async for row in self.every(conn, actor, query):
            page.append(row)
            if len(page) == query.limit:
                return page, (row["item_id"], row["version"])
        return page, None

    async def every(
        self, conn: AsyncConnection, actor: Actor, query: AuditQuery, *, lean: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """Every row of the query, page after page (for CSV exports and summaries). `lean`: only
        what `audit_reports.summarize` reads (agency, domain, category, verdict, working days
        taken, the deadline and the channels' times as dates and datetimes): no ledger lookup,
        no publicity period, no rule JSON."""
        query.check()
        agency = scope(actor, query.agency)
        after = query.cursor
        keys = () if lean else self._publicity_keys
        while True:
            stmt = _versions(query, agency, after, keys, lean=lean).limit(SCAN)
            batch = (await conn.execute(stmt)).all()
            for row in await self._judge(conn, batch, lean):
                if _wanted(row, query):
                    yield row
            if len(batch) < SCAN:
                return
            after = (batch[-1].item_id, batch[-1].version)

    async def _judge(
        self, conn: AsyncConnection, batch: Sequence[Any], lean: bool
    ) -> list[dict[str, Any]]:
        if not batch:
            return []
        first, last = batch[0].item_id, batch[-1].item_id  # (item, version) order
        website: dict[tuple[int, int], Any] = {}
        channels: dict[tuple[int, int], dict[str, Any]] = {}
        for d in await _live(conn, first, last):
            if d.channel == FIRST_PLATFORM:
                website[(d.item_id, d.version)] = d
            elif d.action == Action.PUBLISH:
                at = d.confirmed_at if lean else _iso(d.confirmed_at)
                channels.setdefault((d.item_id, d.version), {})[d.channel] = at
        if lean:
            return [self._lean_row(r, website, channels) for r in batch]
        recorded = await _recorded(conn, first, last)
        return [self._row(r, website, channels, recorded) for r in batch]

    def _judged(
        self, r: Any, website: dict[tuple[int, int], Any], start: date | None
    ) -> tuple[date, bool, date | None, Any, Verdict]:
        """Deadline, provisional or not, the clock's start, the website publication judged and
        the verdict of version `r` (`start`: its stored rule's; a penalty's withdrawal has its
        own 3 working days from its change date)."""
        if r.kind == VersionKind.WITHDRAWAL:
            start = r.changed_on or r.formed_on
            deadline, provisional = penalty_withdrawal_due(self.index.calendar, start)
            delivery = website.get((r.item_id, r.version))
        else:
            deadline, provisional = r.deadline, r.deadline_provisional
            delivery = _first_live(website, r.item_id, r.version, r.latest_version)
        live_at = delivery.confirmed_at if delivery is not None else None
        withdrawn_first = r.item_status == "withdrawn" and r.kind != VersionKind.WITHDRAWAL
        verdict = judge(self.index, deadline, live_at, self.today, start, withdrawn_first)
        return deadline, provisional, start, delivery, verdict

    def _lean_row(
        self, r: Any, website: dict[tuple[int, int], Any], channels: dict[tuple[int, int], Any]
    ) -> dict[str, Any]:
        rule_start = clock_start({"kind": r.rule_kind, "start": r.rule_start})
        deadline, _, _, delivery, verdict = self._judged(r, website, rule_start)
        return {
            "agency": r.agency_code, "agency_name": r.agency_name, "domain": r.domain,
            "category": r.category, "verdict": verdict.verdict, "deadline": deadline,
            "deadline_end": deadline_end(deadline), "working_days_taken": verdict.taken,
            "published_at": delivery.confirmed_at if delivery is not None else None,
            "channels": channels.get((r.item_id, r.version), {}), "due_in": verdict.due_in,
        }  # fmt: skip

    def _row(
        self,
        r: Any,
        website: dict[tuple[int, int], Any],
        channels: dict[tuple[int, int], dict[str, str | None]],
        recorded: dict[int, str | None],
    ) -> dict[str, Any]:
        deadline, provisional, start, delivery, verdict = self._judged(
            r, website, clock_start(r.deadline_rule)
        )
        withdrawal = r.kind == VersionKind.WITHDRAWAL
        rule = penalty_rule_json(start) if withdrawal and start else r.deadline_rule
        live_at = delivery.confirmed_at if delivery is not None else None
        return {
            "item_id": r.item_id, "version": r.version, "kind": r.kind, "status": r.status,
            "agency": r.agency_code, "agency_name": r.agency_name, "domain": r.domain,
            "category": r.category, "index_no": r.index_no, "title": r.title,
            "decision": r.decision, "start": _iso(start), "deadline": deadline.isoformat(),
            "deadline_provisional": provisional, "rule": rule,
            "published_at": _iso(live_at),
            "published_version": delivery.version if delivery is not None else None,
            "channels": channels.get((r.item_id, r.version), {}),
            "working_days_taken": verdict.taken, "verdict": verdict.verdict,
            "late_by": verdict.late_by, "due_in": verdict.due_in, "late_reason": r.late_reason,
            "ledger": _ledger_state(delivery, recorded),
            "publicity": self._publicity(r),
        }  # fmt: skip

    def _publicity(self, r: Any) -> dict[str, Any] | None:
        """The publicity period (公示期) against the category's minimum, where it has one."""
        category = self.catalogue.category(r.domain, r.category) if self.catalogue else None
        rule = category.min_publicity if category is not None else None
        fields = r.fields if isinstance(r.fields, dict) else {}
        first, last = (
            fields.get(rule.start) if rule else None,
            fields.get(rule.end) if rule else None,
        )
        if rule is None or not (isinstance(first, str) and isinstance(last, str)):
            return None
        try:
            start, end = date.fromisoformat(first), date.fromisoformat(last)
        except ValueError:
            return None
        shortest = shortest_end(self.index.calendar, rule, start)
        return {"start": first, "end": last, "shortest_end": shortest.isoformat(),
                "ok": end >= shortest, "basis": rule.basis}  # fmt: skip


def _first_live(
    website: dict[tuple[int, int], Any], item_id: int, version: int, latest: int
) -> Any:
    """This version's website publication, else the earliest of a later version's."""
    own = website.get((item_id, version))
    if own is not None and own.action == Action.PUBLISH:
        return own
    later = [website.get((item_id, v)) for v in range(version + 1, latest + 1)]
    live = [d for d in later if d is not None and d.action == Action.PUBLISH]
    return min(live, key=lambda d: d.confirmed_at, default=None)


def _wanted(row: dict[str, Any], query: AuditQuery) -> bool:
    if query.status is not None and row["verdict"] != query.status:
        return False
    return not (query.within is not None and row["due_in"] is not None
                and row["due_in"] > query.within)  # fmt: skip


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


ALERT_DAYS = 3  # "what will be late within three working days"


async def alerts(
    conn: AsyncConnection, index: WorkdayIndex, on: date
) -> dict[tuple[str, str, str], int]:
    """(agency, domain, "due_soon" | "overdue") -> how many versions: not live on the website
    (nor any later version of theirs) and due within `ALERT_DAYS` working days, or overdue."""
    later = deliveries.alias("later")
    published_since = (
        sa.select(later.c.id)
        .where(
            later.c.item_id == item_versions.c.item_id,
            later.c.version >= item_versions.c.version,
            later.c.channel == FIRST_PLATFORM,
            later.c.action == Action.PUBLISH,
            later.c.status == DeliveryStatus.PUBLISHED,
        )
        .exists()
    )
    stmt = (
        sa.select(items.c.agency_code, items.c.domain, item_versions.c.deadline)
        .join(items, items.c.id == item_versions.c.item_id)
        .where(
            item_versions.c.kind != VersionKind.WITHDRAWAL,
            items.c.status != "withdrawn",
            ~published_since,
        )
    )
    found: dict[tuple[str, str, str], int] = {}
    for agency, domain, deadline in await conn.execute(stmt):
        verdict = judge(index, deadline, None, on)
        if verdict.verdict == "overdue":
            key = (agency, domain, "overdue")
        elif verdict.due_in is not None and verdict.due_in <= ALERT_DAYS:
            key = (agency, domain, "due_soon")
        else:
            continue
        found[key] = found.get(key, 0) + 1
    return found
