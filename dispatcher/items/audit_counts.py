"""The summary's counts, made by the database: a year of versions is counted in a few grouped
queries instead of being judged one by one in Python (`bench/audit.py`: 100,000 items).

The same verdicts as `verdicts.judge` over the same versions as `timeliness.Auditor.every`
(`tests/test_audit_counts.py` compares the two on every edge): a version is live at its own
website publication, else at the earliest of a later version's (a correction approved before
the original went live); live on or before its deadline day in Beijing time is on time
(`deadlines.on_time`: before the end of that day), after it late; not live, it is withdrawn if
its item was, due if the deadline has not passed, else overdue. The working days taken need the
official calendar, so the database gives each (clock start, day live) pair with its count and
the calendar's index counts them. A penalty decision's withdrawal (its deadline comes from its
change date) is judged in Python (`Auditor.every`): there are few.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from channels import FIRST_PLATFORM
from dispatcher.items.audit_query import AuditQuery, filtered
from dispatcher.rules.states import Action, DeliveryStatus, VersionKind
from dispatcher.rules.verdicts import WorkdayIndex, clock_start
from dispatcher.storage.models import agencies, deliveries, item_versions, items
from dispatcher.storage.sql_time import beijing_day


@dataclass(frozen=True)
class Group:
    """Versions of one agency, domain and category with one verdict: how many, and how many of
    them are live on the website."""

    agency: str
    agency_name: str
    domain: str
    category: str
    verdict: str
    versions: int
    live: int


@dataclass(frozen=True)
class Counts:
    groups: list[Group]
    taken: dict[int, int]  # working days taken -> versions
    channels: dict[tuple[str, bool], int]  # (channel, on time) -> publications


def _on_website(d: sa.FromClause) -> sa.ColumnElement[bool]:
    return sa.and_(
        d.c.item_id == item_versions.c.item_id,
        d.c.channel == FIRST_PLATFORM,
        d.c.action == Action.PUBLISH,
        d.c.status.in_(DeliveryStatus.confirmed()),
    )


def _judged(query: AuditQuery, agency: str | None, today: date) -> sa.CTE:
    """Each original and revision of the query with its verdict, clock start and day live:
    its own website publication (joined), else the earliest of a later version's (a subquery
    that runs only where it has none)."""
    v = item_versions
    own, later = deliveries.alias("own"), deliveries.alias("later")
    first_later = (
        sa.select(sa.func.min(later.c.confirmed_at))
        .where(_on_website(later), later.c.version > v.c.version)
        .scalar_subquery()
    )
    day = beijing_day(sa.func.coalesce(own.c.confirmed_at, first_later))
    verdict = sa.case(
        (day.is_not(None), sa.case((day <= v.c.deadline, "on_time"), else_="late")),
        (items.c.status == "withdrawn", "withdrawn"),
        (v.c.deadline >= today, "due"),
        else_="overdue",
    )
    stmt = (
        sa.select(
            items.c.agency_code.label("agency"),
            agencies.c.name.label("agency_name"),
            items.c.domain,
            items.c.category,
            verdict.label("verdict"),
            v.c.deadline_rule["kind"].as_string().label("rule_kind"),
            v.c.deadline_rule["start"].as_string().label("rule_start"),
            day.label("day"),
        )
        .select_from(v)
        .join(items, items.c.id == v.c.item_id)
        .join(agencies, agencies.c.code == items.c.agency_code)
        .outerjoin(own, sa.and_(_on_website(own), own.c.version == v.c.version))
        .where(v.c.kind != VersionKind.WITHDRAWAL)
    )
    # Used twice below: both databases materialise it once (PostgreSQL 12+, SQLite).
    judged: sa.CTE = filtered(stmt, query, agency).cte("judged")
    return judged


async def count(
    conn: AsyncConnection, query: AuditQuery, agency: str | None, today: date,
    index: WorkdayIndex,
) -> Counts:  # fmt: skip
    j = _judged(query, agency, today)
    live = sa.case((j.c.day.is_not(None), 1), else_=0)
    text = sa.String()
    by_group = sa.select(
        sa.literal("g"), j.c.agency, j.c.agency_name, j.c.domain, j.c.category, j.c.verdict,
        sa.func.count(), sa.func.sum(live),
    ).group_by(j.c.agency, j.c.agency_name, j.c.domain, j.c.category, j.c.verdict)  # fmt: skip
    by_days = (
        sa.select(
            sa.literal("t"), j.c.rule_kind, j.c.rule_start, sa.cast(j.c.day, text),
            sa.null(), sa.null(), sa.func.count(), sa.literal(0),
        )
        .where(j.c.day.is_not(None))
        .group_by(j.c.rule_kind, j.c.rule_start, j.c.day)
    )  # fmt: skip
    groups: list[Group] = []
    taken: dict[int, int] = {}
    for part, a, b, c, d, e, n, n_live in await conn.execute(sa.union_all(by_group, by_days)):
        if part == "g":
            groups.append(Group(a, b, c, d, e, n, int(n_live or 0)))
            continue
        start = clock_start({"kind": a, "start": b})
        if start is not None:
            days = index.between(start, date.fromisoformat(str(c)[:10]))
            taken[days] = taken.get(days, 0) + n
    return Counts(groups, taken, await _channels(conn, query, agency))


async def _channels(
    conn: AsyncConnection, query: AuditQuery, agency: str | None
) -> dict[tuple[str, bool], int]:
    """(channel, on time) -> the other channels' confirmed publications of the query's
    versions, each judged by its own time against the version's deadline."""
    v, d = item_versions, deliveries
    on_time = beijing_day(d.c.confirmed_at) <= v.c.deadline
    stmt = (
        sa.select(d.c.channel, on_time.label("on_time"), sa.func.count())
        .select_from(v)
        .join(items, items.c.id == v.c.item_id)
        .join(d, sa.and_(d.c.item_id == v.c.item_id, d.c.version == v.c.version))
        .where(
            v.c.kind != VersionKind.WITHDRAWAL,
            d.c.channel != FIRST_PLATFORM,
            d.c.action == Action.PUBLISH,
            d.c.status.in_(DeliveryStatus.confirmed()),
            d.c.confirmed_at.is_not(None),
        )
        .group_by(d.c.channel, on_time)
    )
    rows = await conn.execute(filtered(stmt, query, agency))
    return {(channel, bool(ok)): n for channel, ok, n in rows}
