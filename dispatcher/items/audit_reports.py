"""The audit's aggregates over `timeliness` rows: the summary (totals and on-time rates by
agency, domain, category and channel; the distribution of working days taken) and the annual
report's active-disclosure figures (政府信息公开工作年度报告, 主动公开政府信息情况).

On-time rate = on time / (on time + late + overdue): versions still due are not judged yet, and
one withdrawn before it was ever live is not judged at all. A channel's rate compares its own
confirmed time with the version's deadline (only the website's is the legal one).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from channels import FIRST_PLATFORM
from channels.base import SHANGHAI
from dispatcher.errors import InputError
from dispatcher.items import audit_counts
from dispatcher.items.audit_query import AuditQuery
from dispatcher.items.timeliness import Auditor, scope
from dispatcher.rules.catalogue import Catalogue
from dispatcher.rules.permissions import Actor
from dispatcher.rules.states import Action, DeliveryStatus, VersionKind
from dispatcher.rules.verdicts import VERDICTS
from dispatcher.storage.models import deliveries, item_versions, items

JUDGED = ("on_time", "late", "overdue")
# Working days taken, in bands: the distribution's labels, in order.
BANDS = ((0, 0, "0"), (1, 1, "1"), (2, 2, "2"), (3, 3, "3"), (4, 5, "4-5"), (6, 7, "6-7"),
         (8, 10, "8-10"), (11, 20, "11-20"), (21, 10**6, "21+"))  # fmt: skip
DECISION_KEYS = {"administrative_permit": "行政许可", "administrative_penalty": "行政处罚"}


def _band(days: int) -> str:
    return next(label for low, high, label in BANDS if low <= days <= high)


class _Tally:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, verdict: str, n: int = 1) -> None:
        self.counts[verdict] += n

    def to_json(self) -> dict[str, Any]:
        judged = sum(self.counts[v] for v in JUDGED)
        rate = round(self.counts["on_time"] / judged, 4) if judged else None
        return {"total": sum(self.counts.values()), **{v: self.counts[v] for v in VERDICTS},
                "on_time_rate": rate}  # fmt: skip


class _Summary:
    def __init__(self) -> None:
        self.total = _Tally()
        self.by: dict[str, defaultdict[str, _Tally]] = {
            key: defaultdict(_Tally) for key in ("agency", "domain", "category", "channel")
        }
        self.names: dict[str, str] = {}
        self.taken: Counter[str] = Counter()

    def add(self, group: audit_counts.Group) -> None:
        verdict, n = group.verdict, group.versions
        self.total.add(verdict, n)
        self.by["agency"][group.agency].add(verdict, n)
        self.names[group.agency] = group.agency_name
        self.by["domain"][group.domain].add(verdict, n)
        self.by["category"][f"{group.domain}/{group.category}"].add(verdict, n)
        if group.live:
            self.by["channel"][FIRST_PLATFORM].add(verdict, group.live)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"totals": self.total.to_json()}
        for key, tallies in self.by.items():
            out[f"by_{key}"] = [
                {key: name, **({"name": self.names[name]} if key == "agency" else {}),
                 **t.to_json()}
                for name, t in sorted(tallies.items())
            ]  # fmt: skip
        out["working_days_taken"] = [{"days": label, "versions": self.taken[label]}
                                     for _, _, label in BANDS]  # fmt: skip
        return out


async def summarize(
    conn: AsyncConnection, auditor: Auditor, actor: Actor, query: AuditQuery
) -> dict[str, Any]:
    """Totals, on-time rates by agency, domain, category and channel, and working days taken,
    over every version `auditor.every` would judge for `query` (its verdict filters aside):
    originals and revisions counted by the database (`audit_counts`), penalty withdrawals
    judged one by one."""
    query.check()
    if query.status is not None or query.within is not None or query.cursor is not None:
        raise InputError(
            [("status", "the summary counts every verdict: no status, within or cursor")]
        )
    agency = scope(actor, query.agency)
    summary = _Summary()
    counts = await audit_counts.count(conn, query, agency, auditor.today, auditor.index)
    for group in counts.groups:
        summary.add(group)
    for days, n in counts.taken.items():
        summary.taken[_band(days)] += n
    for (channel, on_time), n in counts.channels.items():
        summary.by["channel"][channel].add("on_time" if on_time else "late", n)
    async for row in auditor.every(conn, actor, query, withdrawals=True):
        summary.add(audit_counts.Group(
            row["agency"], row["agency_name"], row["domain"], row["category"], row["verdict"],
            1, int(row["published_at"] is not None),
        ))  # fmt: skip
        if row["working_days_taken"] is not None:
            summary.taken[_band(row["working_days_taken"])] += 1
    return summary.to_json()


async def annual(
    conn: AsyncConnection,
    actor_scope: str | None,
    year: int,
    catalogue: Catalogue,
    timeliness: Mapping[str, Any],
) -> dict[str, Any]:
    """The year's active-disclosure figures this system knows: items first published on the
    website during `year` (Beijing time) per domain and category, and the administrative permit
    and penalty decisions among them; with the year's timeliness totals."""
    start, end = _year_bounds(year)
    first = (
        sa.select(deliveries.c.item_id, sa.func.min(deliveries.c.confirmed_at).label("first"))
        .where(
            deliveries.c.channel == FIRST_PLATFORM,
            deliveries.c.action == Action.PUBLISH,
            deliveries.c.status == DeliveryStatus.PUBLISHED,
        )
        .group_by(deliveries.c.item_id)
        .subquery()
    )
    v1 = item_versions.alias("v1")
    stmt = (
        sa.select(items.c.domain, items.c.category, v1.c.decision, sa.func.count())
        .join(first, first.c.item_id == items.c.id)
        .join(v1, sa.and_(v1.c.item_id == items.c.id, v1.c.version == 1))
        .where(first.c.first >= start, first.c.first < end, v1.c.kind != VersionKind.WITHDRAWAL)
        .group_by(items.c.domain, items.c.category, v1.c.decision)
    )
    if actor_scope is not None:
        stmt = stmt.where(items.c.agency_code == actor_scope)
    per_category: Counter[tuple[str, str]] = Counter()
    decisions: Counter[str] = Counter()
    for domain, category, decision, count in await conn.execute(stmt):
        per_category[(domain, category)] += count
        if decision in DECISION_KEYS:
            decisions[decision] += count
    rows = []
    for (domain, category), count in sorted(per_category.items()):
        labels = catalogue.labels(domain, category)
        rows.append({"domain": domain, "domain_name": labels["domain_name"],
                     "category": category, "category_name": labels["category_name"],
                     "published": count})  # fmt: skip
    return {
        "year": year,
        "agency": actor_scope,
        "published_total": sum(per_category.values()),
        "by_category": rows,
        "decisions": [
            {"decision": key, "name": name, "disclosed": decisions[key]}
            for key, name in DECISION_KEYS.items()
        ],
        "timeliness": timeliness,
    }


def _year_bounds(year: int) -> tuple[datetime, datetime]:
    return (datetime(year, 1, 1, tzinfo=SHANGHAI), datetime(year + 1, 1, 1, tzinfo=SHANGHAI))
