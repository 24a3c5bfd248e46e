"""The timeliness verdict of one item version, and working days counted fast.

A version's clock started on a day (its category's rule, stored with the version's deadline);
it is judged by when the first platform (the government website) put it live, in Beijing time:

- `on_time`: live before the end of the deadline day (`deadlines.on_time`, the one rule);
- `late`: live after it, late by N working days (the working days after the deadline up to the
  day it went live; at least 1: a rest day after the deadline already counts into the next);
- `due`: not yet live and the deadline not passed: due in N working days (0: today);
- `overdue`: not yet live and the deadline passed, by N working days so far;
- `withdrawn`: withdrawn before it was ever live: not judged.

Working days taken: from the clock's start (not counted) to the day it went live, on the
official calendar; none for a lead time (a notice due before an event).

A withdrawal of an administrative penalty decision that was changed or revoked must be
published within 3 working days (《行政处罚法》（2021）第四十八条): `PENALTY_WITHDRAWAL`, judged
by when the website took the item down, from the withdrawal's change date.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from channels.base import SHANGHAI
from dispatcher.rules.calendar import WorkCalendar
from dispatcher.rules.deadlines import on_time
from dispatcher.rules.limits import TimeLimit, period_end

VERDICTS = ("on_time", "late", "due", "overdue", "withdrawn")
FILTERABLE = ("on_time", "late", "due", "overdue")
PENALTY_WITHDRAWAL = TimeLimit(
    "deadline", 3, "working_days", "《中华人民共和国行政处罚法》（2021年修订）第四十八条",
    start="行政处罚决定变更或者撤销之日",
)  # fmt: skip
_EPOCH_YEAR = 2000


class WorkdayIndex:
    """`ordinal(day)`: how many working days fall from 2000-01-01 to `day` (inclusive), so the
    working days after `a` up to `b` are `ordinal(b) - ordinal(a)`, in constant time: one list
    indexed by the day's ordinal, extended a year at a time as later days are asked for."""

    def __init__(self, calendar: WorkCalendar) -> None:
        self.calendar = calendar
        self._base = date(_EPOCH_YEAR, 1, 1).toordinal()
        self._counts: list[int] = []
        self._last_year = _EPOCH_YEAR - 1

    def ordinal(self, day: date) -> int:
        i = day.toordinal() - self._base
        if i < 0:
            return 0  # before 2000: no deadline of this system lies there
        while i >= len(self._counts):
            self._extend()
        return self._counts[i]

    def between(self, after: date, upto: date) -> int:
        """Working days strictly after `after`, up to and including `upto` (0 if none)."""
        return max(0, self.ordinal(upto) - self.ordinal(after))

    def _extend(self) -> None:
        year = self._last_year + 1
        total = self._counts[-1] if self._counts else 0
        day = date(year, 1, 1)
        while day.year == year:
            total += self.calendar.is_workday(day)[0]
            self._counts.append(total)
            day += timedelta(days=1)
        self._last_year = year


@functools.lru_cache(maxsize=8)
def workday_index(calendar: WorkCalendar) -> WorkdayIndex:
    """The index of a calendar, built once per process (a calendar does not change)."""
    return WorkdayIndex(calendar)


class Verdict(NamedTuple):  # a tuple: made once per row of a year's audit
    verdict: str
    late_by: int | None = None  # working days (late or overdue)
    due_in: int | None = None  # working days (due)
    taken: int | None = None  # working days from the clock's start to going live


def beijing_day(at: datetime) -> date:
    return at.astimezone(SHANGHAI).date()


def judge(
    index: WorkdayIndex,
    deadline: date,
    live_at: datetime | None,
    today: date,
    start: date | None = None,
    withdrawn_first: bool = False,
) -> Verdict:
    """The verdict on a version due by `deadline`, live at `live_at` (None: not yet); `start`
    the day its clock started (None for a lead time: no working days taken)."""
    if live_at is None:
        if withdrawn_first:
            return Verdict("withdrawn")
        if today <= deadline:
            return Verdict("due", due_in=index.between(today, deadline))
        return Verdict("overdue", late_by=max(1, index.between(deadline, today)))
    day = beijing_day(live_at)
    taken = index.between(start, day) if start is not None else None
    if on_time(live_at, deadline):
        return Verdict("on_time", taken=taken)
    return Verdict("late", late_by=max(1, index.between(deadline, day)), taken=taken)


def clock_start(rule: dict[str, Any] | None) -> date | None:
    """The day a stored rule's clock started; None for a lead time or an unreadable rule."""
    if not rule or rule.get("kind") != "deadline" or not rule.get("start"):
        return None
    try:
        return date.fromisoformat(str(rule["start"]))
    except ValueError:
        return None


def penalty_withdrawal_due(calendar: WorkCalendar, changed_on: date) -> tuple[date, bool]:
    """The last day to publish the withdrawal of a changed or revoked penalty decision."""
    return period_end(calendar, changed_on, PENALTY_WITHDRAWAL.count, PENALTY_WITHDRAWAL.unit)


def penalty_rule_json(changed_on: date) -> dict[str, Any]:
    return {**PENALTY_WITHDRAWAL.to_json(), "start": changed_on.isoformat()}
