"""The audit benchmark's year of data (`bench/audit.py`): N items spread like a real year,
inserted straight into the tables, with a valid hash-chained ledger."""

from __future__ import annotations

import hashlib
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels.base import SHANGHAI
from dispatcher.dispatch.outcomes import delivery_event
from dispatcher.rules import limits
from dispatcher.rules.calendar import WorkCalendar
from dispatcher.rules.catalogue import Category, load_catalogue
from dispatcher.rules.permissions import PUBLISHER_FIELDS
from dispatcher.rules.states import Action, DeliveryStatus, ItemStatus, VersionKind
from dispatcher.storage import ledger
from dispatcher.storage.db import Database, migrate
from dispatcher.storage.models import agencies, deliveries, item_versions, items

YEAR = 2026
JAN1, DEC31 = date(YEAR, 1, 1), date(YEAR, 12, 31)
CHUNK = 5000  # items generated and inserted per transaction
EVENT_BATCH = 5000  # events per `ledger.append_many`

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
