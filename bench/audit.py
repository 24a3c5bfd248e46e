"""Audit benchmark: the yearly timeliness summary and a full CSV export over a year of items.

    python bench/audit.py [--items 100000] [--database-url URL | --skip-pg] [--today 2026-12-15]
                          [--repeat 2] [--ledger full|minimal] [--profile auto|always|never]

Builds a year (2026) of N items straight into the tables (no workflow: bulk INSERTs), spread
like a real year: 8 agencies of uneven size, all six domains with some of their categories and
their real time limits (deadlines computed by `limits.due` on the official calendar), about 85%
published on time, 8% late (with a reason), some still due or overdue, ~3% withdrawn (a
withdrawal version and takedowns; a few before ever going live), ~10% revised (a version 2 with
its own deadline and publication); website, feeds and WeChat deliveries, and the ledger's events
as a valid hash chain (`ledger.append_many`): with `--ledger full` every event the workflow and
the dispatcher would write (submitted, approved, delivery created and confirmed), with `minimal`
only the website's delivery.published / delivery.withdrawn events that the audit looks up.

Then, in a fresh process (so that its peak RSS is the measurement's own), times with
`time.perf_counter`, `--repeat` times each: (1) the yearly summary, `summarize(Auditor.every(...,
AuditQuery(since=2026-01-01, until=2026-12-31, limit=1000)))`; (2) the summary followed by the
ledger's full verification, as `gongkai audit summary` runs them; (3) a full CSV export (header
and `csv_rows` in batches of 500, as `gongkai audit --format csv`, every row, to a temp file);
(4) the ledger's full verification alone (`ledger_checks.full`). On SQLite (a temp file) and on
PostgreSQL when reachable: a scratch database created next to the one `--database-url` names
and dropped afterwards (that database itself is not touched). Prints a line per measurement,
the peak RSS during each, and verdicts on the targets (summary < 2 s, CSV < 5 s; the slowest
run counts). `--profile auto` profiles a summary that misses its target (SQL time per query
kind and query plans; on SQLite also cProfile). Figures only; nothing passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import hashlib
import io
import json
import os
import pstats
import random
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import psutil  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels.base import SHANGHAI
from dispatcher.dispatch.outcomes import delivery_event
from dispatcher.items.audit_export import csv_header, csv_rows
from dispatcher.items.audit_reports import summarize
from dispatcher.items.timeliness import Auditor, AuditQuery
from dispatcher.rules import limits
from dispatcher.rules.calendar import WorkCalendar
from dispatcher.rules.catalogue import Category, load_catalogue
from dispatcher.rules.permissions import PUBLISHER_FIELDS, Actor
from dispatcher.rules.states import Action, DeliveryStatus, ItemStatus, Role, VersionKind
from dispatcher.rules.verdicts import WorkdayIndex
from dispatcher.storage import ledger, ledger_checks
from dispatcher.storage.db import Database, migrate
from dispatcher.storage.models import agencies, deliveries, item_versions, items

SCRIPT = str(Path(__file__).resolve())
URL_ENV = "GONGKAI_BENCH_AUDIT_URL"  # the measuring process's database (not on its command line)
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
AUDITOR = Actor("", Role.AUDITOR, "bench")
YEAR = 2026
JAN1, DEC31 = date(YEAR, 1, 1), date(YEAR, 12, 31)
TARGETS = {"summary": 2.0, "csv": 5.0}
CHUNK = 5000  # items generated and inserted per transaction
EVENT_BATCH = 5000  # events per `ledger.append_many`
CSV_BATCH = 500  # rows per `csv_rows` call, as the CLI does

# 8 agencies of uneven size: (code, name, weight).
AGENCIES = [
    (f"11990100MB{n:07d}X", name, weight)
    for n, (name, weight) in enumerate(
        [("示范市公共资源交易中心", 30), ("示范市财政局", 20), ("示范市自然资源和规划局", 14),
         ("示范市住房和城乡建设局", 12), ("示范市国有资产监督管理委员会", 8),
         ("示范市东区住房和城乡建设局", 7), ("示范市西区财政局", 5),
         ("示范市矿产资源管理办公室", 4)],
        start=1,
    )
]  # fmt: skip
# (domain, category, weight, decision): every domain, the busy categories weighted up; two lead
# times (a notice due before an event), a permit and a penalty decision.
PICKS = [
    ("housing", "planning_scheme", 1, None), ("housing", "allocation_housing", 3, None),
    ("housing", "allocation_result", 3, None), ("housing", "rural_renovation_recipients", 3, None),
    ("land", "supply_plan", 1, None), ("land", "transfer_notice", 3, None),
    ("land", "deal_announcement", 3, None), ("land", "supply_result", 2, None),
    ("mining", "transfer_notice", 1, None), ("mining", "transfer_result", 1, None),
    ("mining", "approval_result", 1, "administrative_permit"),
    ("procurement", "procurement_intention", 4, None), ("procurement", "project_notice", 6, None),
    ("procurement", "procurement_result", 8, None),
    ("procurement", "procurement_contract", 6, None),
    ("procurement", "violation_record", 1, "administrative_penalty"),
    ("state_assets", "decision_approval", 1, None), ("state_assets", "transfer_price", 2, None),
    ("state_assets", "deal_price", 2, None), ("state_assets", "project_info", 1, None),
    ("bidding", "bid_notice", 5, None), ("bidding", "bid_candidates", 8, None),
    ("bidding", "bid_result", 8, None), ("bidding", "market_credit", 1, None),
]  # fmt: skip
CHANNELS = ("website", "feeds", "wechat")
BODIES = ["<p>现将有关信息公示如下，公示期内如有异议，请以书面形式向本机关反映。</p>" * n
          for n in (8, 16, 24, 40)]  # fmt: skip
LATE_REASONS = ("评标报告移交延误", "系统故障，次日补发", "待上级部门确认后发布", "经办人员调整")


# ---------------------------------------------------------------------------------------------
# The year's data


@dataclass
class Batch:
    """Rows of one chunk of items, in insertion order, and their ledger events."""

    items: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    events: list[ledger.Event] = field(default_factory=list)


@dataclass
class Story:
    """One item as it is being written: its versions so far and what went live."""

    item_id: int
    agency: str
    category: Category
    domain: str
    versions: list[dict[str, Any]] = field(default_factory=list)
    live: dict[str, datetime] = field(default_factory=dict)  # channel -> confirmed (latest)
    live_version: int | None = None
    index_no: str | None = None
    last_change: datetime | None = None


class Year:
    """A deterministic year of items (seeded), written chunk by chunk."""

    def __init__(self, today: date, seed: int, full_ledger: bool) -> None:
        self.rng = random.Random(seed)
        self.today = today
        self.full_ledger = full_ledger
        self.calendar = WorkCalendar.from_file(None)
        self.catalogue = load_catalogue()
        self.delivery_id = 0
        self.serials: Counter[str] = Counter()
        self.fates: Counter[str] = Counter()
        self._dues: dict[tuple[Any, ...], limits.Due] = {}

    def batch(self, first: int, count: int) -> Batch:
        out = Batch()
        for item_id in range(first, first + count):
            self._item(out, item_id)
        return out

    # -- one item --------------------------------------------------------------------------

    def _item(self, out: Batch, item_id: int) -> None:
        rng = self.rng
        code = rng.choices([a[0] for a in AGENCIES], [a[2] for a in AGENCIES])[0]
        domain, key, decision = rng.choices([p[:2] + p[3:] for p in PICKS],
                                            [p[2] for p in PICKS])[0]  # fmt: skip
        category = self.catalogue.domains[domain].categories[key]
        story = Story(item_id, code, category, domain)
        start = JAN1 + timedelta(days=rng.randrange((self.today - JAN1).days))
        content = self._content(story, start, decision)
        live_at = self._original(out, story, content, start)
        if live_at is not None:
            self._afterwards(out, story, content, live_at)
        self._finish(out, story, start)

    def _original(
        self, out: Batch, story: Story, content: dict[str, Any], start: date
    ) -> datetime | None:
        """Version 1 and its fate; returns when it went live on the website (None: not)."""
        submitted = self._at(start, 8, 8)
        fate = self._fate(content["deadline"])
        live_at = None
        if fate in ("on_time", "late"):
            live_at = self._live_at(start, content["deadline"], late=fate == "late")
            fate = fate if live_at is not None else "overdue"
        self.fates[fate] += 1
        if fate == "withdrawn_first":
            self._version(out, story, 1, VersionKind.ORIGINAL, content, submitted, None)
            day = min(start + timedelta(days=self.rng.randint(1, 5)), self.today - timedelta(1))
            self._withdraw(out, story, content, max(day, start))
        elif fate == "due" and self.rng.random() < 0.3:  # approved, its deliveries still trying
            approved = submitted + timedelta(hours=self.rng.randint(1, 6))
            self._version(out, story, 1, VersionKind.ORIGINAL, content, submitted, approved)
            self._deliver(out, story, 1, approved, None, Action.PUBLISH)
        elif live_at is None:  # due or overdue: not yet approved
            self._version(out, story, 1, VersionKind.ORIGINAL, content, submitted, None)
        else:
            late = {"late_reason": self.rng.choice(LATE_REASONS)} if fate == "late" else {}
            approved = live_at - timedelta(seconds=self.rng.randint(30, 1800))
            self._version(out, story, 1, VersionKind.ORIGINAL, content | late,
                          min(submitted, approved), approved)  # fmt: skip
            self._deliver(out, story, 1, approved, live_at, Action.PUBLISH)
        return live_at

    def _afterwards(
        self, out: Batch, story: Story, content: dict[str, Any], live_at: datetime
    ) -> None:
        """A revision (~10%), then a withdrawal (~2.5%) of an item that went live."""
        rng, last_day = self.rng, self.today - timedelta(days=1)
        day = live_at.astimezone(SHANGHAI).date()
        if rng.random() < 0.10 and story.category.time_limit.kind == "deadline":
            changed = day + timedelta(days=rng.randint(1, 30))
            if changed <= last_day:
                revised = self._revise(out, story, content, changed)
                day = revised or day
        if rng.random() < 0.025:
            withdrawn = day + timedelta(days=rng.randint(1, 40))
            if withdrawn <= last_day:
                self.fates["withdrawn_after_live"] += 1
                self._withdraw(out, story, content, withdrawn)

    def _revise(
        self, out: Batch, story: Story, content: dict[str, Any], changed: date
    ) -> date | None:
        """Version 2 (a correction), its clock started on `changed`; the day it went live."""
        self.fates["revised"] += 1
        due = self._due(story, changed, content["decision"], None)
        revision = content | self._deadline(due) | {"title": content["title"] + "（更正）"}
        extra = {"changed_on": changed, "change_note": "更正公告内容"}
        submitted = self._at(changed, 8, 8)
        fate = self._fate(due.date)
        live_at = None
        if fate in ("on_time", "late"):
            live_at = self._live_at(changed, due.date, late=fate == "late")
        if live_at is None:  # awaiting approval
            self._version(out, story, 2, VersionKind.REVISION, revision | extra, submitted, None)
            return None
        if fate == "late":
            extra["late_reason"] = self.rng.choice(LATE_REASONS)
        approved = live_at - timedelta(seconds=self.rng.randint(30, 1800))
        self._version(out, story, 2, VersionKind.REVISION, revision | extra,
                      min(submitted, approved), approved)  # fmt: skip
        self._deliver(out, story, 2, approved, live_at, Action.PUBLISH)
        return live_at.astimezone(SHANGHAI).date()

    def _withdraw(self, out: Batch, story: Story, content: dict[str, Any], day: date) -> None:
        """A withdrawal version (approved at once) and a takedown on every channel it is on."""
        version = len(story.versions) + 1
        base = story.versions[(story.live_version or version - 1) - 1]
        copied = {key: base[key] for key in content}
        at = self._at(day, 9, 8)
        extra = {"changed_on": day, "change_note": "撤回：信息有误"}
        self._version(out, story, version, VersionKind.WITHDRAWAL, copied | extra, at, at)
        if story.live_version is not None:
            late = self.rng.random() < 0.1 and content["decision"] == "administrative_penalty"
            done = at + (timedelta(days=self.rng.randint(4, 8)) if late else timedelta(minutes=5))
            self._deliver(out, story, version, at, done, Action.WITHDRAW)

    # -- rows ------------------------------------------------------------------------------

    def _content(self, story: Story, start: date, decision: str | None) -> dict[str, Any]:
        category, code, n = story.category, story.agency, story.item_id
        limit = category.time_limit
        event = None
        if limit.kind == "lead":  # e.g. an auction `limit.count`+5..40 days after submission
            event = start + timedelta(days=self.rng.randint(limit.count + 5, limit.count + 40))
        due = self._due(story, start, decision, event)
        publisher = dict.fromkeys(PUBLISHER_FIELDS.values()) | {
            PUBLISHER_FIELDS[category.publisher]: code
        }
        bidding = story.domain in ("bidding", "procurement")
        return {
            "title": f"{category.name}（{YEAR}年第{n}号）", "summary": category.description[:80],
            "body_html": BODIES[n % len(BODIES)], "fields": self._fields(story, start),
            "withheld": [], "formed_on": start, "decision": decision, **publisher,
            "project_code": f"E990100{YEAR}{n:07d}" if bidding else None,
            "region": f"9901{n % 12:02d}",
            "document_number": f"示范〔{YEAR}〕{n}号" if n % 3 == 0 else None,
            "keywords": [category.name], "validity": "valid",
            "channels": [c for c in category.default_channels if c in CHANNELS],
            "publish_at": None, "late_reason": None, **self._deadline(due),
        }  # fmt: skip

    def _fields(self, story: Story, start: date) -> dict[str, Any]:
        """A notice number; and a publicity period (公示期) where the category has a minimum,
        now and then a day or two short of it."""
        found: dict[str, Any] = {"notice_no": f"{YEAR}-{story.item_id:06d}"}
        rule = story.category.min_publicity
        if rule is not None:
            days = rule.count * (7 if rule.unit == "working_days" else 5) // 5
            first = start + timedelta(days=1)
            last = first + timedelta(days=days + self.rng.choice((-2, -1, 0, 0, 1, 2, 3)))
            found |= {rule.start: first.isoformat(), rule.end: last.isoformat()}
        return found

    @staticmethod
    def _deadline(due: limits.Due) -> dict[str, Any]:
        return {"deadline": due.date, "deadline_provisional": due.provisional,
                "deadline_rule": due.to_json()}  # fmt: skip

    def _due(
        self, story: Story, start: date, decision: str | None, event: date | None
    ) -> limits.Due:
        key = (story.domain, story.category.key, start, decision, event)
        if key not in self._dues:
            self._dues[key] = limits.due(
                self.calendar, story.category.time_limit, start, decision, event
            )
        return self._dues[key]

    def _version(
        self, out: Batch, story: Story, version: int, kind: str, values: dict[str, Any],
        submitted: datetime, approved: datetime | None,
    ) -> None:  # fmt: skip
        status = ItemStatus.APPROVED if approved is not None else ItemStatus.SUBMITTED
        row = {"changed_on": None, "change_note": None} | values | {
            "item_id": story.item_id, "version": version, "kind": kind, "status": status,
            "submitted_by": "editor", "submitted_at": submitted,
            "approved_by": "approver" if approved else None, "approved_at": approved,
        }  # fmt: skip
        story.versions.append(row)
        story.last_change = approved or submitted
        withdrawal = kind == VersionKind.WITHDRAWAL
        if approved is not None and not withdrawal:
            story.live_version = version
            if story.index_no is None:
                self.serials[story.agency] += 1
                story.index_no = f"{story.agency}/{YEAR}-{self.serials[story.agency]:05d}"
        out.versions.append(row)
        if not self.full_ledger:
            return
        digest = hashlib.sha256(f"{story.item_id}:{version}".encode()).hexdigest()
        out.events.append(ledger.Event(
            "item.withdrawn" if withdrawal else "item.submitted", "editor (editor, cli)",
            item_id=story.item_id, version=version, at=submitted,
            data={"kind": kind, "deadline": str(row["deadline"]), "change_note": row["change_note"],
                  "deadline_provisional": row["deadline_provisional"], "content_sha256": digest},
        ))  # fmt: skip
        if approved is not None and not withdrawal:
            out.events.append(ledger.Event(
                "item.approved", "approver (approver, cli)", item_id=story.item_id,
                version=version, at=approved, data={"status": status, "index_no": story.index_no},
            ))  # fmt: skip

    def _deliver(
        self, out: Batch, story: Story, version: int, requested: datetime,
        live_at: datetime | None, action: str,
    ) -> None:  # fmt: skip
        """One delivery per channel: confirmed from `live_at` on (the website first), or still
        retrying (None); a WeChat delivery fails now and then."""
        channels = story.versions[version - 1]["channels"]
        if action == Action.WITHDRAW:
            channels = [c for c in channels if c in story.live]
        for channel in channels:
            self.delivery_id += 1
            confirmed = self._confirmed(channel, live_at)
            if live_at is None:
                status = DeliveryStatus.RETRYING
            elif confirmed is None:
                status = DeliveryStatus.FAILED
            else:
                status = DeliveryStatus.live(action)
            if confirmed is not None and action == Action.PUBLISH:
                story.live[channel] = confirmed
            url = f"https://gk.example.cn/i/{story.item_id}" if channel == "website" else None
            row = {
                "id": self.delivery_id, "item_id": story.item_id, "version": version,
                "channel": channel, "status": status, "action": action, "attempts": 1,
                "next_attempt_at": requested + timedelta(minutes=5) if live_at is None else None,
                "lease_until": None, "steps": {}, "external_id": f"{channel}-{self.delivery_id}",
                "url": url, "requested_at": requested, "confirmed_at": confirmed,
                "last_error": "连接超时" if confirmed is None else None,
                "updated_at": confirmed or requested,
            }  # fmt: skip
            out.deliveries.append(row)
            self._delivery_events(out, row, live_at)

    def _confirmed(self, channel: str, live_at: datetime | None) -> datetime | None:
        if live_at is None:
            return None
        if channel == "website":
            return live_at
        if channel == "feeds":
            return live_at + timedelta(seconds=self.rng.randint(1, 20))
        if self.rng.random() < 0.03:
            return None  # WeChat failed for good
        return live_at + timedelta(minutes=self.rng.randint(5, 600))

    def _delivery_events(self, out: Batch, row: dict[str, Any], live_at: datetime | None) -> None:
        ids = (row["item_id"], row["version"], row["id"])
        if self.full_ledger:
            out.events.append(ledger.Event(
                "delivery.created", "system", *ids[:2], delivery_id=ids[2],
                at=row["requested_at"], data={"channel": row["channel"],
                                              "action": row["action"], "status": "pending"},
            ))  # fmt: skip
        if live_at is None or not (self.full_ledger or row["channel"] == "website"):
            return
        confirmed = row["confirmed_at"]
        data = {"channel": row["channel"], "attempt": 1}
        if confirmed is None:
            data |= {"error": row["last_error"], "retry_at": None}
        else:
            data |= {"external_id": row["external_id"], "url": row["url"],
                     "confirmed_at": confirmed.astimezone(UTC).isoformat()}  # fmt: skip
        at = confirmed or live_at + timedelta(hours=1)
        out.events.append(delivery_event(*ids, row["status"], at, data))

    def _finish(self, out: Batch, story: Story, start: date) -> None:
        """Statuses as the workflow leaves them: older versions superseded by a newer approved
        one; the item's status that of its latest version (or withdrawn)."""
        approved = [v["version"] for v in story.versions if v["approved_at"] is not None]
        newest = max(approved, default=0)
        for row in story.versions:
            if row["version"] < newest:
                row["status"] = ItemStatus.SUPERSEDED
        latest = story.versions[-1]
        withdrawn = latest["kind"] == VersionKind.WITHDRAWAL
        first = story.versions[0]["submitted_at"]
        out.items.append({
            "id": story.item_id, "agency_code": story.agency, "domain": story.domain,
            "category": story.category.key,
            "status": ItemStatus.WITHDRAWN if withdrawn else latest["status"],
            "latest_version": latest["version"], "live_version": story.live_version,
            "index_no": story.index_no, "idempotency_key": None, "request_hash": None,
            "created_at": first, "updated_at": max(story.last_change or first, *story.live.values(),
                                                   first),
        })  # fmt: skip

    # -- chance --------------------------------------------------------------------------------

    def _fate(self, deadline: date) -> str:
        r = self.rng.random()
        if deadline >= self.today:  # not passed yet: half already live
            return "due" if r < 0.5 else "on_time"
        if r < 0.0075:
            return "withdrawn_first"
        if r < 0.0225:
            return "overdue"
        return "late" if r < 0.1025 else "on_time"

    def _live_at(self, start: date, deadline: date, *, late: bool) -> datetime | None:
        """When the website confirmed it: on time by the deadline, or 1-20 days after it;
        never on or after `today` (None if that leaves no day)."""
        last = self.today - timedelta(days=1)
        if late:
            day = min(deadline + timedelta(days=self.rng.randint(1, 20)), last)
            if day <= deadline:
                return None
        else:
            low, high = min(start, last), min(deadline, last)
            day = low + timedelta(days=self.rng.randint(0, max(0, (high - low).days)))
        return self._at(day, 9, 10)

    def _at(self, day: date, hour: int, hours: int) -> datetime:
        """A time on `day` (Beijing) between `hour` and `hour + hours`, to the microsecond."""
        seconds = self.rng.randrange(hours * 3600)
        at = datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)
        return at + timedelta(seconds=seconds, microseconds=self.rng.randrange(1_000_000))


async def build(db: Database, n: int, today: date, seed: int, full_ledger: bool) -> Counter[str]:
    """Migrate, then write `n` items in chunks; returns the rows written and the fates."""
    await migrate(db)
    year = Year(today, seed, full_ledger)
    made: Counter[str] = Counter()
    now = datetime(YEAR, 1, 1, tzinfo=SHANGHAI)
    async with db.transaction() as conn:
        await conn.execute(agencies.insert(), [
            {"code": code, "name": name, "region": "990100", "index_prefix": code,
             "created_at": now} for code, name, _ in AGENCIES
        ])  # fmt: skip
    for first in range(1, n + 1, CHUNK):
        out = year.batch(first, min(CHUNK, n + 1 - first))
        async with db.transaction() as conn:
            await conn.execute(items.insert(), out.items)
            await conn.execute(item_versions.insert(), out.versions)
            await conn.execute(deliveries.insert(), out.deliveries)
            for at in range(0, len(out.events), EVENT_BATCH):
                await ledger.append_many(conn, out.events[at : at + EVENT_BATCH])
        made.update(items=len(out.items), versions=len(out.versions),
                    deliveries=len(out.deliveries), events=len(out.events))  # fmt: skip
    if db.dialect == "postgresql":  # as autovacuum would soon after such a load
        async with db.transaction() as conn:
            await conn.execute(sa.text("ANALYZE"))
    return made + Counter({f"fate:{k}": v for k, v in year.fates.items()})


# ---------------------------------------------------------------------------------------------
# Measuring (in a process of its own)


class PeakRss:
    """The process's peak RSS while inside (sampled every 5 ms by a thread), in MiB."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss / 2**20)
            self._stop.wait(0.005)

    def __enter__(self) -> PeakRss:
        self.peak = self.process.memory_info().rss / 2**20
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _auditor(today: date) -> Auditor:
    """A fresh auditor (working-day index, catalogue: publicity periods), as the CLI makes."""
    return Auditor(WorkdayIndex(WorkCalendar.from_file(None)), today, load_catalogue())


YEARLY = AuditQuery(since=JAN1, until=DEC31, limit=1000)


async def run_summary(db: Database, auditor: Auditor) -> int:
    async with db.connect() as conn:
        body = await summarize(auditor.every(conn, AUDITOR, YEARLY, lean=True))
    return int(body["totals"]["total"])


async def run_ledger(db: Database, _: Auditor | None = None) -> int:
    async with db.connect() as conn:
        point = await ledger_checks.full(conn)
    if not point.ok:
        raise RuntimeError(f"the ledger does not verify: {point.problem} at {point.bad_seq}")
    return point.seq


async def run_summary_and_ledger(db: Database, auditor: Auditor) -> int:
    """As `gongkai audit summary`: the summary, then a full check of the chain."""
    total = await run_summary(db, auditor)
    await run_ledger(db)
    return total


async def run_csv(db: Database, auditor: Auditor, path: str) -> int:
    """Every row (no filter), as `gongkai audit --format csv` writes them."""
    written = 0
    with open(path, "w", encoding="utf-8", newline="") as out:  # noqa: ASYNC230 - as the CLI
        out.write(csv_header())
        async with db.connect() as conn:
            batch: list[dict[str, Any]] = []
            async for row in auditor.every(conn, AUDITOR, AuditQuery(limit=1000)):
                batch.append(row)
                if len(batch) == CSV_BATCH:
                    out.write(csv_rows(batch))
                    written, batch = written + len(batch), []
            out.write(csv_rows(batch))
    return written + len(batch)


async def timed(
    repeat: int, today: date, job: Callable[[Auditor], Awaitable[int]]
) -> dict[str, Any]:
    """`job` run `repeat` times, each with a fresh auditor made before the clock starts."""
    runs, peaks, count = [], [], 0
    for _ in range(repeat):
        auditor = _auditor(today)
        with PeakRss() as rss:
            started = time.perf_counter()
            count = await job(auditor)
            runs.append(time.perf_counter() - started)
        peaks.append(rss.peak)
    return {"runs": runs, "rows": count, "rss": max(peaks)}


async def measure(url: str, today: date, repeat: int, profile: bool) -> dict[str, Any]:
    db = Database(url)
    try:
        with tempfile.TemporaryDirectory(prefix="gk-bench-audit-csv-") as tmp:
            path = os.path.join(tmp, "audit.csv")
            found = {
                "rss_start": psutil.Process().memory_info().rss / 2**20,
                "summary": await timed(repeat, today, lambda a: run_summary(db, a)),
                "summary_ledger": await timed(
                    repeat, today, lambda a: run_summary_and_ledger(db, a)
                ),
                "csv": await timed(repeat, today, lambda a: run_csv(db, a, path)),
                "ledger": await timed(repeat, today, lambda a: run_ledger(db, a)),
            }
            found["csv_bytes"] = Path(path).stat().st_size  # noqa: ASYNC240 - once, at the end
        async with db.connect() as conn:
            found["totals"] = (await summarize(
                _auditor(today).every(conn, AUDITOR, YEARLY, lean=True)))["totals"]  # fmt: skip
        if profile:
            found["profile"] = await profile_summary(db, today)
    finally:
        await db.dispose()
    return found


# -- the profile --------------------------------------------------------------------------------


def _kind(statement: str) -> str:
    if "FROM item_versions JOIN items" in statement:
        return "versions page (_versions)"
    if "FROM deliveries" in statement:
        return "deliveries (_live)"
    if "FROM events" in statement:
        return "ledger events (_recorded)"
    return "other"


@contextlib.contextmanager
def sql_timer(db: Database) -> Any:
    """Time spent in each kind of statement (execute and fetch: the driver fetches all), with
    the last statement of each kind and its parameters (to explain)."""
    spent: dict[str, list[float]] = {}
    last: dict[str, tuple[str, Any]] = {}
    engine = db.engine.sync_engine

    def before(conn: Any, *_: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        kind = _kind(statement)
        entry = spent.setdefault(kind, [0, 0.0])
        entry[0] += 1
        entry[1] += time.perf_counter() - conn.info.pop("bench_t0")
        last[kind] = (statement, params)

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        yield spent, last
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
        sa.event.remove(engine, "after_cursor_execute", after)


async def profile_summary(db: Database, today: date) -> str:
    """The SQL time per query kind and each query's plan (its last page); on SQLite also a
    cProfile of one summary (the main thread only: SQLite's work runs on aiosqlite's thread and
    shows as waiting in `epoll.poll`)."""
    text = io.StringIO()
    with sql_timer(db) as (spent, last):
        started = time.perf_counter()
        await run_summary(db, _auditor(today))
        wall = time.perf_counter() - started
    print(f"summary {wall:.2f} s, of which SQL (execute + fetch, per query kind):", file=text)
    for kind, (count, seconds) in sorted(spent.items(), key=lambda kv: -kv[1][1]):
        print(f"  {kind:28} {count:6} queries {seconds:8.2f} s", file=text)
    async with db.connect() as conn:
        explain = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
        for kind, (statement, params) in sorted(last.items()):
            if kind == "other":
                continue
            plan = await conn.exec_driver_sql(explain + statement, params)
            lines = [" | ".join(str(c) for c in row)[:150] for row in plan]
            print(f"plan of the last {kind}:\n    " + "\n    ".join(lines), file=text)
    if db.dialect != "sqlite":
        return text.getvalue()
    auditor = _auditor(today)
    profiler = cProfile.Profile()
    profiler.enable()
    await run_summary(db, auditor)
    profiler.disable()
    for order in ("tottime", "cumulative"):
        print(f"cProfile of one summary, top 18 by {order}:", file=text)
        stats = pstats.Stats(profiler, stream=text)
        stats.strip_dirs().sort_stats(order).print_stats(18)
    return text.getvalue()


# ---------------------------------------------------------------------------------------------
# Driving


@contextlib.asynccontextmanager
async def pg_scratch(url: str) -> AsyncIterator[str | None]:
    """A scratch database on the server `url` names (None if unreachable), dropped after."""
    base = make_url(url).set(drivername="postgresql")
    dsn = base.render_as_string(hide_password=False)
    name = f"gongkai_bench_audit_{secrets.token_hex(4)}"
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL at {base.render_as_string()} not reachable ({exc}): skipped")
        yield None
        return
    try:
        await asyncio.wait_for(conn.execute(f'CREATE DATABASE "{name}"'), 60)
        try:
            yield base.set(drivername="postgresql+asyncpg", database=name).render_as_string(
                hide_password=False
            )
        finally:
            await asyncio.wait_for(conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)'), 120)
    finally:
        await conn.close(timeout=10)


async def child(url: str, args: argparse.Namespace, profile: bool) -> dict[str, Any]:
    """The measurements, in a fresh process (bounded by `--timeout`)."""
    argv = ["--measure", "--today", args.today.isoformat(), "--repeat", str(args.repeat)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, SCRIPT, *argv, *(["--profile", "always"] if profile else []),
        env={**os.environ, URL_ENV: url}, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), args.timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"the measurements took over {args.timeout} s: killed") from None
    if proc.returncode != 0:
        raise RuntimeError(f"the measuring process failed ({proc.returncode}): see above")
    found: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    return found


def _line(label: str, name: str, found: dict[str, Any], what: str) -> None:
    runs = found["runs"]
    shown = ", ".join(f"{r:.2f}" for r in runs)
    print(f"{label:10} {name:34} {max(runs):7.2f} s  (runs {shown}; {found['rows']:,} {what}; "
          f"peak RSS {found['rss']:.0f} MiB)", flush=True)  # fmt: skip


def report(label: str, found: dict[str, Any]) -> dict[str, bool]:
    _line(label, "yearly summary", found["summary"], "versions")
    _line(label, "summary + full ledger verify (CLI)", found["summary_ledger"], "versions")
    _line(label, "full CSV export", found["csv"], "rows")
    _line(label, "ledger full verification", found["ledger"], "events")
    totals = found["totals"]
    print(f"{label:10} CSV {found['csv_bytes'] / 2**20:.1f} MiB; process RSS at start "
          f"{found['rss_start']:.0f} MiB; yearly totals: " + ", ".join(
              f"{k} {v}" for k, v in totals.items()))  # fmt: skip
    met = {}
    for key, limit in TARGETS.items():
        worst = max(found[key]["runs"])
        met[key] = worst < limit
        verdict = "target met" if met[key] else "TARGET MISSED"
        print(f"{label:10} {key} < {limit:g} s: {verdict} ({worst:.2f} s)")
    if "profile" in found:
        print(found["profile"])
    return met


async def backend(label: str, url: str, args: argparse.Namespace) -> None:
    db = Database(url)
    try:
        started = time.perf_counter()
        made = await build(db, args.items, args.today, args.seed, args.ledger == "full")
        took = time.perf_counter() - started
    finally:
        await db.dispose()
    rows = ", ".join(f"{made[k]:,} {k}" for k in ("items", "versions", "deliveries", "events"))
    fates = ", ".join(f"{k[5:]} {v:,}" for k, v in sorted(made.items()) if k.startswith("fate:"))
    print(f"{label:10} built in {took:.1f} s: {rows} (v1 fates: {fates})", flush=True)
    found = await child(url, args, args.profile == "always")
    met = report(label, found)
    if args.profile == "auto" and not met["summary"]:
        print(f"{label:10} summary missed its target: profiling it", flush=True)
        again = await child(url, argparse.Namespace(**{**vars(args), "repeat": 1}), True)
        print(again["profile"])


async def main(args: argparse.Namespace) -> None:
    print(f"{args.items:,} items over {YEAR}, audited as of {args.today}; ledger {args.ledger}; "
          f"{args.repeat} run(s) per measurement", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gk-bench-audit-") as tmp:
        await backend("sqlite", f"sqlite+aiosqlite:///{tmp}/audit.db", args)
    if args.skip_pg:
        return
    async with pg_scratch(args.database_url) as url:
        if url is not None:
            await backend("postgresql", url, args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--database-url", default=DEFAULT_PG,
                        help="a PostgreSQL server to create a scratch database on")  # fmt: skip
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--today", type=date.fromisoformat, default=date(YEAR, 12, 15),
                        help="the audit's day (Beijing); the data ends the day before")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--ledger", choices=("full", "minimal"), default="full")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto")
    parser.add_argument("--seed", type=int, default=YEAR)
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds the measurements of one database may take")  # fmt: skip
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not JAN1 < args.today <= date(YEAR + 1, 1, 1):
        parser.error(f"--today must fall in {YEAR} (or be {YEAR + 1}-01-01)")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.measure:
        result = asyncio.run(measure(os.environ[URL_ENV], arguments.today, arguments.repeat,
                                     arguments.profile == "always"))  # fmt: skip
        print(json.dumps(result))
    else:
        asyncio.run(main(arguments))
