"""The summary's counts made by the database (`audit_counts`) against the verdicts judged one by
one in Python (`Auditor.every`): the same figures on every edge, on both databases. The edges:
a website time one microsecond before and exactly at the end of the deadline day (Beijing),
another channel's time at that end, a version corrected before it went live (judged by the
correction), a version due, one overdue, one withdrawn before it was ever live, a penalty
decision's withdrawal, and filters by agency, category and period."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from channels import REGISTRY
from channels.base import SHANGHAI
from dispatcher.items import workflow
from dispatcher.items.audit_query import AuditQuery
from dispatcher.items.audit_reports import BANDS, summarize
from dispatcher.items.timeliness import Auditor
from dispatcher.rules.deadlines import today
from dispatcher.rules.permissions import Actor
from dispatcher.rules.rulebook import build_rules
from dispatcher.rules.states import Role
from dispatcher.rules.verdicts import WorkdayIndex
from dispatcher.settings import Settings
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries, events, item_versions
from tests.helpers import (
    APPROVER,
    CENTER,
    EDITOR,
    all_in,
    bid_candidates,
    running_worker,
    wait_until,
)

TODAY = today()
AUDITOR = Actor("", Role.AUDITOR, "test")
CHANNELS = ["website", "feeds"]


def _item(n: int, formed: date, **changes: Any) -> dict[str, Any]:
    fields = {**bid_candidates()["fields"],
              "publicity_start": (formed + timedelta(days=1)).isoformat(),
              "publicity_end": (formed + timedelta(days=8)).isoformat()}  # fmt: skip
    return bid_candidates(formed_on=formed.isoformat(), fields=fields, channels=CHANNELS,
                          project_code=f"E99010000099{n:05d}", title=f"公示{n}",
                          **changes)  # fmt: skip


def _end(deadline: date) -> datetime:
    """The first instant after the deadline day, Beijing time."""
    return datetime.combine(deadline + timedelta(days=1), time(), SHANGHAI)


async def _set_time(db: Database, item_id: int, channel: str, at: datetime) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.item_id == item_id, deliveries.c.channel == channel)
            .values(confirmed_at=at)
        )


async def _deadline(db: Database, item_id: int, version: int = 1) -> date:
    async with db.connect() as conn:
        stmt = sa.select(item_versions.c.deadline).where(
            item_versions.c.item_id == item_id, item_versions.c.version == version
        )
        found = (await conn.execute(stmt)).scalar_one()
    assert isinstance(found, date)
    return found


@pytest.fixture
async def edges(db: Database, agencies: list[str], dispatch_settings: Settings) -> dict[str, int]:
    rules = build_rules(dispatch_settings)
    old = TODAY - timedelta(days=25)
    ids: dict[str, int] = {}
    for n, (name, formed, approve) in enumerate((
        ("just_in_time", old, True), ("at_the_end", old, True), ("on_time", TODAY, True),
        ("corrected", old, True), ("due", TODAY, False), ("overdue", old, False),
        ("withdrawn_first", old, False), ("penalty", old, True),
    )):  # fmt: skip
        extra = {"decision": "administrative_penalty"} if name == "penalty" else {}
        ids[name], _ = await workflow.submit(db, rules, EDITOR, _item(n, formed, **extra))
        if approve:
            await workflow.approve(db, APPROVER, ids[name])
    # corrected before it was ever live: the correction goes live, judged for both versions
    correction = {
        "title": "公示3（更正）",
        "change_note": "更正标题",
        "changed_on": old.isoformat(),
    }
    await workflow.revise(db, rules, EDITOR, ids["corrected"], correction)
    await workflow.approve(db, APPROVER, ids["corrected"])
    await workflow.withdraw(db, APPROVER, ids["withdrawn_first"], {"reason": "项目终止"})
    async with running_worker(dispatch_settings, dict(REGISTRY)):
        await wait_until(all_in(db, "published", "skipped"))  # v1 of `corrected`: skipped
        await workflow.withdraw(db, APPROVER, ids["penalty"],
                                {"reason": "复议撤销", "changed_on": old.isoformat()})  # fmt: skip
        await wait_until(all_in(db, "published", "skipped", "withdrawn"))
    end = _end(await _deadline(db, ids["just_in_time"]))
    await _set_time(db, ids["just_in_time"], "website", end - timedelta(microseconds=1))
    await _set_time(db, ids["just_in_time"], "feeds", end)  # the feed a moment late
    await _set_time(db, ids["at_the_end"], "website", _end(await _deadline(db, ids["at_the_end"])))
    return ids


def _reference(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary's figures tallied here from the rows judged one by one."""
    totals: Counter[str] = Counter()
    by: dict[str, defaultdict[str, Counter[str]]] = {
        k: defaultdict(Counter) for k in ("agency", "domain", "category", "channel")
    }
    taken: Counter[str] = Counter()
    for row in rows:
        verdict = row["verdict"]
        totals[verdict] += 1
        by["agency"][row["agency"]][verdict] += 1
        by["domain"][row["domain"]][verdict] += 1
        by["category"][f"{row['domain']}/{row['category']}"][verdict] += 1
        if row["published_at"] is not None:
            by["channel"]["website"][verdict] += 1
        for channel, at in row["channels"].items():
            late = datetime.fromisoformat(at) >= _end(date.fromisoformat(row["deadline"]))
            by["channel"][channel]["late" if late else "on_time"] += 1
        if row["working_days_taken"] is not None:
            days = row["working_days_taken"]
            taken[next(label for low, high, label in BANDS if low <= days <= high)] += 1
    return {"totals": totals, "by": by, "taken": taken}


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    verdicts = ("on_time", "late", "due", "overdue", "withdrawn")

    def counts(entry: dict[str, Any]) -> Counter[str]:
        return Counter({v: entry[v] for v in verdicts if entry[v]})

    by = {key: {e[key]: counts(e) for e in summary[f"by_{key}"]}
          for key in ("agency", "domain", "category", "channel")}  # fmt: skip
    taken = Counter({b["days"]: b["versions"] for b in summary["working_days_taken"]
                     if b["versions"]})  # fmt: skip
    return {"totals": counts(summary["totals"]), "by": by, "taken": taken}


@pytest.mark.parametrize("filters", [
    {},
    {"agency": CENTER},
    {"category": "bid_candidates", "since": TODAY - timedelta(days=400)},
    {"until": TODAY - timedelta(days=1)},
])  # fmt: skip
async def test_the_database_counts_as_the_verdicts_judge(
    db: Database, edges: dict[str, int], dispatch_settings: Settings, filters: dict[str, Any]
) -> None:
    rules = build_rules(dispatch_settings)
    auditor = Auditor(WorkdayIndex(rules.calendar), TODAY, rules.catalogue)
    query = AuditQuery(**filters, limit=1000)
    async with db.connect() as conn:
        rows = [row async for row in auditor.every(conn, AUDITOR, query)]
        summary = await summarize(conn, auditor, AUDITOR, query)
    assert rows, "the filters leave something to count"
    expected = _reference(rows)
    got = _figures(summary)
    assert got["totals"] == expected["totals"]
    assert got["taken"] == expected["taken"]
    for key, tallies in expected["by"].items():
        assert got["by"][key] == {name: c for name, c in tallies.items() if c}, key


async def test_the_edges_are_judged_as_the_law_says(
    db: Database, edges: dict[str, int], dispatch_settings: Settings
) -> None:
    rules = build_rules(dispatch_settings)
    auditor = Auditor(WorkdayIndex(rules.calendar), TODAY, rules.catalogue)
    async with db.connect() as conn:
        rows = [row async for row in auditor.every(conn, AUDITOR, AuditQuery(limit=1000))]
        summary = await summarize(conn, auditor, AUDITOR, AuditQuery())
    verdict = {(r["item_id"], r["kind"]): r["verdict"] for r in rows}
    assert verdict[(edges["just_in_time"], "original")] == "on_time"  # 23:59:59.999999
    assert verdict[(edges["at_the_end"], "original")] == "late"  # 00:00 the day after
    assert verdict[(edges["on_time"], "original")] == "on_time"
    assert verdict[(edges["due"], "original")] == "due"
    assert verdict[(edges["overdue"], "original")] == "overdue"
    assert verdict[(edges["withdrawn_first"], "original")] == "withdrawn"
    assert (edges["penalty"], "withdrawal") in verdict
    corrected = [r for r in rows if r["item_id"] == edges["corrected"]]
    assert [r["published_version"] for r in corrected] == [2, 2]
    feeds = {c["channel"]: c for c in summary["by_channel"]}["feeds"]
    assert feeds["late"] >= 1  # the feed at the very end of the day is late
    totals = summary["totals"]
    assert totals["total"] == len(rows) and totals["withdrawn"] == 1


@pytest.mark.parametrize("data", ["not json", '{"confirmed_at":12}', '{"url":"x"}'])
async def test_an_unreadable_ledger_record_is_flagged_not_fatal(
    db: Database, edges: dict[str, int], dispatch_settings: Settings, data: str
) -> None:
    """An event whose data was edited into something unreadable marks its row `mismatch` (the
    chain check names the event); the audit itself goes on."""
    item = edges["on_time"]
    async with db.transaction() as conn:  # as someone with the database's password might
        await conn.execute(
            sa.update(events)
            .where(events.c.item_id == item, events.c.kind == "delivery.published",
                   events.c.delivery_id.in_(sa.select(deliveries.c.id).where(
                       deliveries.c.item_id == item, deliveries.c.channel == "website")))
            .values(data=data)
        )  # fmt: skip
        await conn.execute(
            sa.delete(events).where(events.c.item_id == edges["just_in_time"],
                                    events.c.kind == "delivery.published")
        )  # fmt: skip
    rules = build_rules(dispatch_settings)
    auditor = Auditor(WorkdayIndex(rules.calendar), TODAY, rules.catalogue)
    async with db.connect() as conn:
        rows = [row async for row in auditor.every(conn, AUDITOR, AuditQuery(limit=1000))]
    ledger = {(r["item_id"], r["kind"]): r["ledger"] for r in rows}
    assert ledger[(item, "original")] == "mismatch"
    assert ledger[(edges["just_in_time"], "original")] == "missing"
    assert ledger[(edges["at_the_end"], "original")] == "mismatch"  # its time was moved
    assert ledger[(edges["due"], "original")] is None  # never published
    assert ledger[(edges["overdue"], "original")] is None
    assert "ok" in {r["ledger"] for r in rows if r["item_id"] == edges["corrected"]}
