"""Statutory time limits as the catalogue states them: deadlines, lead times, publicity periods.

One engine for every rule, in two units:

- `working_days`: the Nth working day after the start day (the start day never counts), on the
  official calendar with its make-up working days (`calendar.WorkCalendar`).
- `days` (calendar days, 民法典 arts. 201 and 203): the start day does not count, so N days after
  it; a period whose last day is a rest day (a weekend that is not a make-up working day, or a
  holiday) ends on the next working day instead.

A category's rule is a `deadline` (publish within N of what starts the clock, e.g. 收到评标报告之日)
or a `lead` (publish at least N days before an event whose date is one of the item's fields, e.g.
the start of an auction). 行政许可、行政处罚 decisions keep their 7 working days on top: the earlier
date wins. A minimum publicity period (公示期) is checked on the item's start and end fields. Any
day looked at in a year without calendar data makes the result `provisional`, as before.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from dispatcher.rules.calendar import WorkCalendar

Unit = Literal["working_days", "days"]
UNIT_NAMES: dict[str, str] = {"working_days": "个工作日", "days": "日"}
# The version of these rules a deadline was computed by (stored with it): 1 was "N working
# days after formed_on" for every category; 2 is this module.
RULES_VERSION = 2
_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class TimeLimit:
    """A category's time rule, with its legal basis (a citation shown to people)."""

    kind: Literal["deadline", "lead"]
    count: int
    unit: Unit
    basis: str
    start: str = ""  # deadline: what starts the clock, in Chinese ("收到评标报告之日")
    before: str = ""  # lead: the key of the item's date field the notice must precede

    def describe(self, event: str = "") -> str:
        """In Chinese: "自收到评标报告之日起3日内" or "在出让活动开始前至少20日"."""
        amount = f"{self.count}{UNIT_NAMES[self.unit]}"
        if self.kind == "lead":
            return f"在{event or self.before}前至少{amount}"
        return f"自{self.start}起{amount}内"

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"kind": self.kind, "count": self.count, "unit": self.unit}
        found.update({"from": self.start} if self.kind == "deadline" else {"before": self.before})
        return found | {"basis": self.basis}


@dataclass(frozen=True)
class Publicity:
    """A minimum publicity period (公示期): the item's `end` date field is at least `count`
    after its `start` date field."""

    count: int
    unit: Unit
    start: str
    end: str
    basis: str

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "unit": self.unit, "start": self.start, "end": self.end,
                "basis": self.basis}  # fmt: skip


# 双公示, kept on top of a category's own rule for a permit or penalty decision.
DECISIONS = TimeLimit(
    "deadline", 7, "working_days",
    "《国务院办公厅关于推进公共资源配置领域政府信息公开的意见》（国办发〔2017〕97号）",
    start="行政许可、行政处罚决定作出之日",
)  # fmt: skip


@dataclass(frozen=True)
class Due:
    """A version's deadline: the last day it may first appear on the website, and why."""

    date: dt.date
    provisional: bool
    rule: TimeLimit  # the rule that set it (the category's, or 7 working days for a decision)
    start: dt.date  # the day the clock started (deadline), or the event's day (lead)

    def to_json(self) -> dict[str, Any]:
        """What is stored with the version and shown: the rule, its basis and its start."""
        return {"version": RULES_VERSION, **self.rule.to_json(), "start": self.start.isoformat()}


def period_end(calendar: WorkCalendar, start: date, count: int, unit: Unit) -> tuple[date, bool]:
    """The last day of `count` `unit` after `start`; and whether it is provisional."""
    if unit == "working_days":
        found = calendar.deadline(start, count)
        return found.date, found.provisional
    day, provisional = start + timedelta(days=count), False
    while True:  # 民法典 art. 203: a period ending on a rest day ends on the next working day
        working, known = calendar.is_workday(day)
        provisional = provisional or not known
        if working:
            return day, provisional
        day += _ONE_DAY


def due(
    calendar: WorkCalendar,
    limit: TimeLimit,
    start: date,
    decision: str | None = None,
    event: date | None = None,
) -> Due:
    """The deadline of a version whose clock started on `start` (lead: before `event`)."""
    if limit.kind == "lead":
        if event is None:
            raise ValueError(f"a lead time needs the date of {limit.before!r}")
        latest = event - timedelta(days=limit.count)
        _, known = calendar.is_workday(latest)
        found = Due(latest, not known, limit, event)
    else:
        day, provisional = period_end(calendar, start, limit.count, limit.unit)
        found = Due(day, provisional, limit, start)
    if decision is not None:
        day, provisional = period_end(calendar, start, DECISIONS.count, DECISIONS.unit)
        if day < found.date:
            found = Due(day, provisional, DECISIONS, start)
    return found


def shortest_end(calendar: WorkCalendar, rule: Publicity, start: date) -> date:
    """The earliest day a publicity period starting on `start` may end."""
    return period_end(calendar, start, rule.count, rule.unit)[0]
