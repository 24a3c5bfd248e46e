"""Provisional deadlines recomputed when the calendar learns a year.

A deadline counted over a year without official calendar data was counted Monday to Friday and
marked provisional (`calendar.py`). Once that year's schedule is known (an override file in
`[calendar] overrides`, or a newer chinese_calendar), `refresh_provisional` recomputes every
provisional version's deadline on the current calendar from what the version stored, updates the
row where the date, the provisional flag or the rule that sets it changed, and records each
change in the ledger in the same transaction. The on-time verdict is computed from the stored
deadline whenever it is shown, so it follows.

What is recomputed from:

- the rule in `deadline_rule` (its kind, count, unit and `start`: the day the clock started,
  or the event's day for a lead time);
- rules version 1 (versions stored before migration 0004, which backfilled "N working days
  after formed_on or the change date", the decision's 7 already in N): that rule as stored;
- rules version 2: `limits.due` with the same inputs intake used. A permit or penalty
  decision's 7 working days compete with the category's own rule, and a changed calendar can
  change which is earlier, so a version whose stored rule is the decision's takes the category's
  rule from the catalogue (and a lead's event from its stored fields) to compare again.
  A lead's decision clock is the version's change date or formation date; a withdrawal records
  its own date as `changed_on`, so it takes that of the version it copied.

Idempotent: a second run on the same calendar changes nothing and appends nothing. Versions
are read by keyset, `PAGE` at a time, each page in one transaction whose rows are locked (on
PostgreSQL; SQLite has one writer), so concurrent runs (serve and worker starting together)
never record a change twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dispatcher.rules import limits
from dispatcher.rules.limits import TimeLimit
from dispatcher.rules.rulebook import Rules
from dispatcher.rules.states import VersionKind
from dispatcher.storage import ledger
from dispatcher.storage.db import Database
from dispatcher.storage.models import item_versions, items

log = logging.getLogger(__name__)

ACTOR = "system (calendar)"
EVENT_KIND = "version.deadline_recomputed"
PAGE = 500
_SOURCES = {"overrides": "calendar overrides cover", "chinese_calendar": "chinese_calendar covers"}


@dataclass(frozen=True)
class Change:
    """One version whose deadline moved or stopped being provisional (or whose rule changed)."""

    item_id: int
    version: int
    old_deadline: date
    old_provisional: bool
    new_deadline: date
    new_provisional: bool
    reason: str  # e.g. "calendar overrides cover 2027; chinese_calendar covers 2026"
    calendar: Mapping[str, str | None] = field(default_factory=dict)  # year -> data source
    old_rule: Mapping[str, Any] | None = None  # set only when the rule changed
    new_rule: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The change as the ledger records it (without item and version, its own columns)."""
        found: dict[str, Any] = {
            "old_deadline": self.old_deadline.isoformat(),
            "old_provisional": self.old_provisional,
            "new_deadline": self.new_deadline.isoformat(),
            "new_provisional": self.new_provisional,
            "reason": self.reason,
            "calendar": dict(self.calendar),
        }
        if self.new_rule is not None:
            found |= {"old_rule": self.old_rule, "new_rule": self.new_rule}
        return found


async def refresh_provisional(db: Database, rules: Rules) -> list[Change]:
    """Recompute every provisional deadline on `rules.calendar`; the changes, in (item,
    version) order. Each page of versions is one transaction with its ledger events."""
    changes: list[Change] = []
    after = (0, 0)
    while True:
        async with db.transaction() as conn:
            page = (await conn.execute(_page(*after))).all()
            found = [c for c in (_change(rules, row) for row in page) if c is not None]
            applied = [c for c in found if await _apply(conn, c)]
            await ledger.append_many(conn, [_event(c) for c in applied])
        changes += applied
        if len(page) < PAGE:
            return changes
        after = (page[-1].item_id, page[-1].version)


def _page(item_id: int, version: int) -> sa.Select[Any]:
    v = item_versions
    base = item_versions.alias("base")  # a withdrawal's: the version it copied
    copied = sa.func.coalesce(items.c.live_version, v.c.version - 1)
    columns = (
        v.c.item_id, v.c.version, v.c.kind, v.c.decision, v.c.formed_on, v.c.changed_on,
        v.c.fields, v.c.deadline, v.c.deadline_provisional, v.c.deadline_rule,
        items.c.domain, items.c.category, base.c.changed_on.label("base_changed_on"),
    )  # fmt: skip
    return (
        sa.select(*columns)
        .join(items, items.c.id == v.c.item_id)
        .outerjoin(
            base,
            sa.and_(
                v.c.kind == VersionKind.WITHDRAWAL,
                base.c.item_id == v.c.item_id,
                base.c.version == copied,
            ),
        )
        .where(v.c.deadline_provisional, sa.tuple_(v.c.item_id, v.c.version) > (item_id, version))
        .order_by(v.c.item_id, v.c.version)
        .limit(PAGE)
        .with_for_update(of=v)
    )


def _change(rules: Rules, row: Any) -> Change | None:
    stored = row.deadline_rule
    try:
        limit = _limit(stored)
        anchor = date.fromisoformat(stored["start"])
    except (KeyError, TypeError, ValueError):
        log.warning("item %s version %s: unreadable deadline_rule %r; deadline left as it is",
                    row.item_id, row.version, stored)  # fmt: skip
        return None
    if stored.get("version", 1) < 2:  # "N working days after formed_on or the change date"
        found = limits.due(rules.calendar, limit, anchor)
        clock = anchor
    else:
        clock = _clock(row) if limit.kind == "lead" else anchor
        own, event = limit, anchor if limit.kind == "lead" else None
        if row.decision is not None and limit == limits.DECISIONS:
            own, event = _category_rule(rules, row, limit, event)
        found = limits.due(rules.calendar, own, clock, row.decision, event)
    same_rule = found.rule == limit and found.start == anchor
    if (found.date, found.provisional) == (row.deadline, row.deadline_provisional) and same_rule:
        return None
    first = clock + timedelta(days=1)
    if limit.kind == "lead" and row.decision is None:
        first = min(found.date, row.deadline)
    calendar = _sources(rules, first, max(found.date, row.deadline))
    return Change(
        row.item_id, row.version, row.deadline, row.deadline_provisional, found.date,
        found.provisional, _reason(calendar), calendar,
        None if same_rule else stored, None if same_rule else found.to_json(),
    )  # fmt: skip


def _limit(stored: Mapping[str, Any]) -> TimeLimit:
    """The rule a version stored (`Due.to_json`, or migration 0004's version 1)."""
    kind, count, unit = stored["kind"], stored["count"], stored["unit"]
    if kind not in ("deadline", "lead") or unit not in limits.UNIT_NAMES:
        raise ValueError(f"unknown rule {kind!r} in {unit!r}")
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"count {count!r} is not an integer")
    basis, start, before = stored["basis"], stored.get("from", ""), stored.get("before", "")
    return TimeLimit(kind, count, unit, basis, start=start, before=before)


def _clock(row: Any) -> date:
    """The day a lead-time version's decision clock started (its change or formation date)."""
    changed = row.base_changed_on if row.kind == VersionKind.WITHDRAWAL else row.changed_on
    day: date = changed or row.formed_on
    return day


def _category_rule(
    rules: Rules, row: Any, stored: TimeLimit, event: date | None
) -> tuple[TimeLimit, date | None]:
    """The category's own rule (and a lead's event day), to compare with the decision's again;
    the stored rule if the catalogue no longer has the category or the event's day."""
    category = rules.catalogue.category(row.domain, row.category)
    if category is None:
        return stored, event
    own = category.time_limit
    if own.kind != "lead":
        return own, None
    value = row.fields.get(own.before) if isinstance(row.fields, dict) else None
    try:
        return own, date.fromisoformat(str(value))
    except ValueError:
        return stored, event


def _sources(rules: Rules, first: date, last: date) -> dict[str, str | None]:
    """Each year the deadline was counted over, and where its schedule comes from now."""
    return {str(y): rules.calendar.source(y) for y in range(first.year, last.year + 1)}


def _reason(calendar: Mapping[str, str | None]) -> str:
    parts = []
    for source, text in _SOURCES.items():
        years = [y for y, s in calendar.items() if s == source]
        if years:
            parts.append(f"{text} {', '.join(years)}")
    unknown = [y for y, s in calendar.items() if s is None]
    if unknown:
        parts.append(f"no official data for {', '.join(unknown)} yet (Monday to Friday)")
    return "; ".join(parts)


async def _apply(conn: AsyncConnection, change: Change) -> bool:
    """Store the new deadline if the row still holds the old one (else another run did)."""
    values: dict[str, Any] = {
        "deadline": change.new_deadline,
        "deadline_provisional": change.new_provisional,
    }
    if change.new_rule is not None:
        values["deadline_rule"] = change.new_rule
    done = await conn.execute(
        item_versions.update()
        .where(
            item_versions.c.item_id == change.item_id,
            item_versions.c.version == change.version,
            item_versions.c.deadline == change.old_deadline,
            item_versions.c.deadline_provisional == change.old_provisional,
        )
        .values(**values)
    )
    return done.rowcount == 1


def _event(change: Change) -> ledger.Event:
    return ledger.Event(
        EVENT_KIND, ACTOR, item_id=change.item_id, version=change.version, data=change.to_json()
    )
