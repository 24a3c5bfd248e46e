"""The audit's reads: which versions a query covers and, in one query per page of versions,
what judging each needs: its website publication (joined), the ledger event that recorded it
(the newest `delivery.published`/`delivery.withdrawn` of that delivery: a subquery), and the
other channels' confirmed publications (gathered into one text: a subquery). A version whose
own website delivery is missing, or is not a publication, may be judged by a later version's
(`later_publications`, read only for those few).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from channels import FIRST_PLATFORM
from dispatcher.errors import InputError
from dispatcher.rules.states import Action, DeliveryStatus, VersionKind
from dispatcher.rules.verdicts import FILTERABLE
from dispatcher.storage.models import agencies, deliveries, events, item_versions, items
from dispatcher.storage.sql_time import beijing_text, json_string, utc_iso, utc_text

MAX_PAGE = 1000
SCAN = 1000  # versions read per round while filling a page
PENALTY = "administrative_penalty"


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


def filtered(stmt: Any, query: AuditQuery, agency: str | None) -> Any:
    """`stmt` (over `item_versions` joined to `items`) narrowed to the query's agency, domain,
    category and period: the deadline day, or for a withdrawal the day its clock started (its
    deadline is computed later)."""
    v = item_versions
    for column, value in ((items.c.agency_code, agency), (items.c.domain, query.domain),
                          (items.c.category, query.category)):  # fmt: skip
        if value is not None:
            stmt = stmt.where(column == value)
    withdrawal = v.c.kind == VersionKind.WITHDRAWAL
    day = sa.case((withdrawal, sa.func.coalesce(v.c.changed_on, v.c.formed_on)),
                  else_=v.c.deadline)  # fmt: skip
    if query.since is not None:
        stmt = stmt.where(day >= query.since)
    if query.until is not None:
        stmt = stmt.where(day <= query.until)
    return stmt


LEDGER_KINDS = ("delivery.published", "delivery.withdrawn")
_SEP = ";"  # between channels in the gathered text (channel names are keys: no ";" nor " ")


def _recorded(delivery: sa.FromClause) -> Any:
    """The confirmation time the newest ledger event of `delivery` recorded, as text: "" when
    the event has none (or its data cannot be read), NULL when there is no event."""
    ev = events.alias("ev")
    return (
        sa.select(sa.func.coalesce(json_string(ev.c.data, "confirmed_at"), ""))
        .where(
            ev.c.item_id == delivery.c.item_id,
            ev.c.delivery_id == delivery.c.id,
            ev.c.kind.in_(LEDGER_KINDS),
        )
        .order_by(ev.c.seq.desc())
        .limit(1)
        .scalar_subquery()
    )


class VersionRow(NamedTuple):
    """A row of `versions`, by position (a tuple's fields are read faster than a `Row`'s)."""

    item_id: int
    version: int
    kind: str
    status: str
    title: str
    decision: str | None
    deadline: date
    deadline_provisional: bool
    rule_text: str | None
    late_reason: str | None
    changed_on: date | None
    formed_on: date
    agency_code: str
    domain: str
    category: str
    index_no: str | None
    item_status: str
    latest_version: int
    agency_name: str
    fields: Any
    own_id: int | None
    own_action: str | None
    own_confirmed_at: datetime | None
    own_recorded: str | None
    channels: str | None


def page_after(after: tuple[int, int] | None) -> dict[str, int]:
    """The parameters of a `versions` page that starts after `after` (None: the first)."""
    item, version = after or (0, 0)
    return {"after_item": item, "after_version": version}


def versions(
    query: AuditQuery,
    agency: str | None,
    publicity: Sequence[str] = (),
    *,
    withdrawals: bool = False,
) -> Any:
    """The versions to judge, in (item, version) order (`withdrawals`: only penalty decisions'
    withdrawals), each with its website delivery, that delivery's ledger record and the other
    channels' publications; the structured fields only where the category has a minimum
    publicity period (`publicity`: those category keys). One statement for every page of a
    query, executed with `page_after` (building and caching it takes milliseconds)."""
    v = item_versions
    confirmed = DeliveryStatus.confirmed()
    own, other = deliveries.alias("own"), deliveries.alias("other")
    penalty_withdrawal = sa.and_(v.c.kind == VersionKind.WITHDRAWAL, v.c.decision == PENALTY)
    judged = (
        penalty_withdrawal
        if withdrawals
        else sa.or_(v.c.kind != VersionKind.WITHDRAWAL, v.c.decision == PENALTY)
    )
    channels = (
        sa.select(sa.func.aggregate_strings(
            other.c.channel + sa.literal(" ") + utc_text(other.c.confirmed_at), _SEP))
        .where(
            other.c.item_id == v.c.item_id,
            other.c.version == v.c.version,
            other.c.channel != FIRST_PLATFORM,
            other.c.action == Action.PUBLISH,
            other.c.status.in_(confirmed),
            other.c.confirmed_at.is_not(None),
        )
        .scalar_subquery()
    )  # fmt: skip
    fields = (
        sa.case((items.c.category.in_(publicity), v.c.fields), else_=sa.null())
        if publicity
        else sa.null()
    )
    columns = {
        "item_id": v.c.item_id, "version": v.c.version, "kind": v.c.kind,
        "status": v.c.status, "title": v.c.title, "decision": v.c.decision,
        "deadline": v.c.deadline, "deadline_provisional": v.c.deadline_provisional,
        "rule_text": sa.cast(v.c.deadline_rule, sa.Text()), "late_reason": v.c.late_reason,
        "changed_on": v.c.changed_on, "formed_on": v.c.formed_on,
        "agency_code": items.c.agency_code, "domain": items.c.domain,
        "category": items.c.category, "index_no": items.c.index_no,
        "item_status": items.c.status, "latest_version": items.c.latest_version,
        "agency_name": agencies.c.name, "fields": sa.type_coerce(fields, sa.JSON()),
        "own_id": own.c.id, "own_action": own.c.action, "own_confirmed_at": own.c.confirmed_at,
        "own_recorded": _recorded(own), "channels": channels,
    }  # fmt: skip
    stmt = (
        sa.select(*(columns[name].label(name) for name in VersionRow._fields))
        .select_from(v)
        .join(items, items.c.id == v.c.item_id)
        .join(agencies, agencies.c.code == items.c.agency_code)
        .outerjoin(own, sa.and_(
            own.c.item_id == v.c.item_id, own.c.version == v.c.version,
            own.c.channel == FIRST_PLATFORM, own.c.status.in_(confirmed),
        ))
        .where(judged)
        .order_by(v.c.item_id, v.c.version)
    )  # fmt: skip
    after_item = sa.bindparam("after_item", type_=sa.BigInteger())
    after_version = sa.bindparam("after_version", type_=sa.Integer())
    return filtered(stmt, query, agency).where(
        # a row value: both databases walk the primary key from there
        sa.tuple_(v.c.item_id, v.c.version) > sa.tuple_(after_item, after_version),
        items.c.id >= after_item,  # so that a merge join starts there on items too
    )


def _channel_pairs(text: str | None) -> list[tuple[str, str]]:
    """The gathered `channels` text -> (channel, `utc_text` time), by channel name."""
    if not text:
        return []
    return sorted((channel, at) for channel, _, at in (p.partition(" ") for p in text.split(_SEP)))


def channel_times(text: str | None) -> dict[str, str]:
    """{channel: ISO time}, by channel name (the API's row)."""
    return {channel: utc_iso(at) for channel, at in _channel_pairs(text)}


def channel_beijing(text: str | None) -> str:
    """ "channel YYYY-MM-DD HH:MM:SS; …" in Beijing time, by channel name (the CSV's column)."""
    return "; ".join(f"{channel} {beijing_text(at)}" for channel, at in _channel_pairs(text))


class Website(NamedTuple):
    """A version's confirmed website delivery and the time the ledger event that recorded it
    holds ("": none or unreadable; None: no event)."""

    id: int
    version: int
    action: str
    confirmed_at: datetime
    recorded: str | None


def own_website(r: VersionRow) -> Website | None:
    if r.own_id is None or r.own_action is None or r.own_confirmed_at is None:
        return None
    return Website(r.own_id, r.version, r.own_action, r.own_confirmed_at, r.own_recorded)


async def later_publications(
    conn: AsyncConnection, ids: Sequence[int]
) -> dict[tuple[int, int], Website]:
    """(item, version) -> the website's confirmed publication of that version, for the items
    `ids` (those with a version judged by a later one's). The state is checked here, not by
    the database, which would otherwise pick the state index and read every delivery."""
    d = deliveries
    rows = await conn.execute(
        sa.select(d.c.id, d.c.item_id, d.c.version, d.c.action, d.c.status, d.c.confirmed_at,
                  _recorded(d).label("recorded"))
        .where(d.c.item_id.in_(sorted(set(ids))), d.c.channel == FIRST_PLATFORM)
    )  # fmt: skip
    confirmed = DeliveryStatus.confirmed()
    return {
        (r.item_id, r.version): Website(r.id, r.version, r.action, r.confirmed_at, r.recorded)
        for r in rows
        if r.action == Action.PUBLISH and r.status in confirmed
    }


def ledger_state(delivery: Website | None) -> str | None:
    """Whether the website time matches the one its ledger event recorded."""
    if delivery is None:
        return None
    if delivery.recorded is None:
        return "missing"
    try:
        same = datetime.fromisoformat(delivery.recorded) == delivery.confirmed_at
    except ValueError:
        same = False
    return "ok" if same else "mismatch"
