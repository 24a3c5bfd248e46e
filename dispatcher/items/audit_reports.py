"""The audit's aggregates over `timeliness` rows: the summary (totals and on-time rates by
agency, domain, category and channel; the distribution of working days taken) and the annual
report's active-disclosure figures (政府信息公开工作年度报告, 主动公开政府信息情况).

On-time rate = on time / (on time + late + overdue): versions still due are not judged yet, and
one withdrawn before it was ever live is not judged at all. A channel's rate compares its own
confirmed time with the version's deadline (only the website's is the legal one).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from channels import FIRST_PLATFORM
from channels.base import SHANGHAI
from dispatcher.rules.catalogue import Catalogue
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

    def add(self, verdict: str) -> None:
        self.counts[verdict] += 1

    def to_json(self) -> dict[str, Any]:
        judged = sum(self.counts[v] for v in JUDGED)
        rate = round(self.counts["on_time"] / judged, 4) if judged else None
        return {"total": sum(self.counts.values()), **{v: self.counts[v] for v in VERDICTS},
                "on_time_rate": rate}  # fmt: skip


async def summarize(rows: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    """Totals, on-time rates by agency, domain, category and channel, and working days taken,
    over `Auditor.every(..., lean=True)` rows."""
    total = _Tally()
    by: dict[str, defaultdict[str, _Tally]] = {
        key: defaultdict(_Tally) for key in ("agency", "domain", "category", "channel")
    }
    names: dict[str, str] = {}
    taken: Counter[str] = Counter()
    async for row in rows:
        verdict = row["verdict"]
        total.add(verdict)
        by["agency"][row["agency"]].add(verdict)
        names[row["agency"]] = row["agency_name"]
        by["domain"][row["domain"]].add(verdict)
        by["category"][f"{row['domain']}/{row['category']}"].add(verdict)
        if row["published_at"] is not None:
            by["channel"][FIRST_PLATFORM].add(verdict)
        end = row["deadline_end"]
        for channel, at in row["channels"].items():
            if at is not None:
                by["channel"][channel].add("on_time" if at < end else "late")
        if row["working_days_taken"] is not None:
            taken[_band(row["working_days_taken"])] += 1
    out: dict[str, Any] = {"totals": total.to_json()}
    for key, tallies in by.items():
        out[f"by_{key}"] = [
            {key: name, **({"name": names[name]} if key == "agency" else {}), **t.to_json()}
            for name, t in sorted(tallies.items())
        ]
    out["working_days_taken"] = [{"days": label, "versions": taken[label]}
                                 for _, _, label in BANDS]  # fmt: skip
    return out


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
