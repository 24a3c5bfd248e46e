"""Timeliness verdicts on hand-computed cases, on the official calendar (2026's National Day
with its make-up working days, the 2025/2026 year end) and a year without data yet (2027).

2026, from the State Council's schedule: 10-01 (Thu) to 10-07 (Wed) off; 09-20 (Sun) and 10-10
(Sat) worked. 2026-01-01 (Thu) to 01-03 (Sat) off; 01-04 (Sun) worked."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from channels.base import SHANGHAI
from dispatcher.rules.calendar import WorkCalendar
from dispatcher.rules.limits import period_end
from dispatcher.rules.verdicts import Verdict, WorkdayIndex, judge, penalty_withdrawal_due

CALENDAR = WorkCalendar()
INDEX = WorkdayIndex(CALENDAR)


def at(day: str, clock: str = "10:00") -> datetime:
    """A time in Beijing."""
    return datetime.fromisoformat(f"{day}T{clock}:00").replace(tzinfo=SHANGHAI)


def test_working_days_between_across_national_day_and_its_make_up_days() -> None:
    # After 09-29 (Tue): 09-30 (1); 10-01..07 off; 10-08 (2), 10-09 (3), 10-10 Sat worked (4).
    assert INDEX.between(date(2026, 9, 29), date(2026, 10, 7)) == 1
    assert INDEX.between(date(2026, 9, 29), date(2026, 10, 10)) == 4
    assert INDEX.between(date(2026, 9, 29), date(2026, 10, 11)) == 4  # Sunday: rest
    # 09-20 was a Sunday worked: after 09-19 (Sat) up to 09-21 (Mon): 09-20, 09-21.
    assert INDEX.between(date(2026, 9, 19), date(2026, 9, 21)) == 2
    assert INDEX.between(date(2026, 10, 9), date(2026, 10, 9)) == 0


def test_working_days_between_across_the_year_end() -> None:
    # After 2025-12-30 (Tue): 12-31 (1); 01-01..03 off; 01-04 Sun worked (2), 01-05 (3).
    assert INDEX.between(date(2025, 12, 30), date(2026, 1, 3)) == 1
    assert INDEX.between(date(2025, 12, 30), date(2026, 1, 5)) == 3
    # The index agrees with counting day by day, over two years.
    day, counted = date(2025, 1, 1), 0
    while day < date(2026, 12, 31):
        day += timedelta(days=1)
        counted += CALENDAR.is_workday(day)[0]
    assert INDEX.between(date(2025, 1, 1), date(2026, 12, 31)) == counted


def test_national_day_deadline_on_time_late_and_taken() -> None:
    # 3 working days after 09-29: 09-30, 10-08, 10-09 -> the deadline is 10-09.
    deadline, provisional = period_end(CALENDAR, date(2026, 9, 29), 3, "working_days")
    assert (deadline, provisional) == (date(2026, 10, 9), False)
    start, today = date(2026, 9, 29), date(2026, 11, 29)
    assert judge(INDEX, deadline, at("2026-10-09", "23:59"), today, start) == Verdict(
        "on_time", taken=3
    )
    # 10-10 00:00 in Beijing is after the end of the deadline day: late by one working day
    # (10-10, the Saturday worked), 4 working days taken.
    assert judge(INDEX, deadline, at("2026-10-10", "00:00"), today, start) == Verdict(
        "late", late_by=1, taken=4
    )
    # Published on Sunday 10-11: still one working day late (a rest day adds none).
    assert judge(INDEX, deadline, at("2026-10-11"), today, start).late_by == 1
    # 10-13 (Tue): 10-10, 10-12, 10-13 -> late by 3.
    assert judge(INDEX, deadline, at("2026-10-13"), today, start).late_by == 3
    # The same instant in UTC on the 9th at 16:30 is the 10th at 00:30 in Beijing: late.
    utc = datetime(2026, 10, 9, 16, 30, tzinfo=UTC)
    assert judge(INDEX, deadline, utc, today, start).verdict == "late"


def test_year_end_due_and_overdue() -> None:
    # 2 working days after 2025-12-30: 12-31, then 2026-01-04 (the Sunday worked).
    deadline, _ = period_end(CALENDAR, date(2025, 12, 30), 2, "working_days")
    assert deadline == date(2026, 1, 4)
    assert judge(INDEX, deadline, None, date(2026, 1, 2)) == Verdict("due", due_in=1)
    assert judge(INDEX, deadline, None, date(2026, 1, 4)) == Verdict("due", due_in=0)
    # On 01-06: 01-05 and 01-06 have passed since the deadline.
    assert judge(INDEX, deadline, None, date(2026, 1, 6)) == Verdict("overdue", late_by=2)
    assert judge(INDEX, deadline, None, date(2026, 1, 5), withdrawn_first=True).verdict == (
        "withdrawn"
    )


def test_a_lead_time_takes_no_working_days() -> None:
    verdict = judge(INDEX, date(2026, 11, 10), at("2026-11-09"), date(2026, 11, 29), None)
    assert verdict == Verdict("on_time", taken=None)


def test_a_penalty_withdrawal_has_three_working_days() -> None:
    # Changed on Wed 09-30: 10-08, 10-09, 10-10 (Sat worked) -> 10-10.
    assert penalty_withdrawal_due(CALENDAR, date(2026, 9, 30)) == (date(2026, 10, 10), False)
    # Changed on 2026-12-30 (Wed): 12-31 known, then 2027 has no data yet: provisional.
    day, provisional = penalty_withdrawal_due(CALENDAR, date(2026, 12, 30))
    assert provisional and day == date(2027, 1, 4)  # weekdays assumed: 12-31, 01-01, 01-04


@pytest.mark.parametrize("year", [2024, 2025, 2026, 2027])
def test_the_index_is_consistent_within_each_year(year: int) -> None:
    assert INDEX.between(date(year, 1, 1), date(year, 1, 1)) == 0
    last = INDEX.ordinal(date(year, 12, 31))
    assert (
        INDEX.ordinal(date(year + 1, 1, 1)) - last == CALENDAR.is_workday(date(year + 1, 1, 1))[0]
    )
