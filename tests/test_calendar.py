"""Deadline counting on China's official working-day calendar.

Expected dates below were counted by hand from the official schedules (also present in
chinese_calendar 1.11), never computed with the code under test:

2025  Spring Festival: Tue Jan 28 - Tue Feb 4 off; make-up Sun Jan 26, Sat Feb 8.
      National Day + Mid-Autumn: Wed Oct 1 - Wed Oct 8 off; make-up Sun Sep 28, Sat Oct 11.
2026  Spring Festival: Sun Feb 15 - Mon Feb 23 off; make-up Sat Feb 14, Sat Feb 28.
      Mid-Autumn: Fri Sep 25 - Sun Sep 27 off.
      National Day: Thu Oct 1 - Wed Oct 7 off; make-up Sun Sep 20, Sat Oct 10.
The start day is never counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import chinese_calendar
import pytest

from dispatcher.rules import calendar
from dispatcher.rules.calendar import (
    CalendarError,
    Deadline,
    WorkCalendar,
    YearSchedule,
    deadline,
    parse_date,
)

D = date.fromisoformat
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "dispatcher" / "rules" / "calendar_overrides.example.toml"


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        # Oct 1-7 off; Oct 8, 9, Sat 10 (make-up), 12, 13, 14, 15.
        ("2026-09-30", 7, "2026-10-15"),
        # Oct 1-8 off; Oct 9, 10, Sat 11 (make-up), 13, 14, 15, 16.
        ("2025-09-30", 7, "2025-10-16"),
        # Sat 27 off, Sun 28 is a make-up workday.
        ("2025-09-26", 1, "2025-09-28"),
        # Sun Sep 28, 29, 30, (Oct 1-8 off), 9, 10, Sat 11, (Sun 12 off), Mon 13.
        ("2025-09-26", 7, "2025-10-13"),
        # Start Fri before make-up Sat Oct 11: Sat 11, (Sun 12 off), Mon 13.
        ("2025-10-10", 2, "2025-10-13"),
        # Sat 25 off, Sun 26 is a make-up workday.
        ("2025-01-24", 1, "2025-01-26"),
        # Jan 28 - Feb 4 off; Wed Feb 5.
        ("2025-01-27", 1, "2025-02-05"),
        # Start on a holiday: Feb 5, 6, 7, Sat 8 (make-up), 10, 11, 12.
        ("2025-01-29", 7, "2025-02-12"),
        # 20 days: Jan 21-24 (4), Sun 26 (5), 27 (6), Feb 5-7 (9), Sat 8 (10),
        # Feb 10-14 (15), Feb 17-21 (20).
        ("2025-01-20", 20, "2025-02-21"),
        # Sat Feb 14 is a make-up workday.
        ("2026-02-13", 1, "2026-02-14"),
        # Start on a make-up Saturday: Feb 15-23 off; Tue Feb 24.
        ("2026-02-14", 1, "2026-02-24"),
        # Sat 14, (15-23 off), 24, 25, 26, 27, Sat 28, (Sun Mar 1 off), Mon Mar 2.
        ("2026-02-13", 7, "2026-03-02"),
        # 20 days: Feb 11-13 (3), Sat 14 (4), Feb 24-27 (8), Sat 28 (9), Mar 2-6 (14),
        # Mar 9-13 (19), Mon Mar 16 (20).
        ("2026-02-10", 20, "2026-03-16"),
        # 20 days: Sun Sep 20 (1), 21-24 (5), (Fri 25 Mid-Autumn off), 28-30 (8),
        # (Oct 1-7 off), Oct 8-9 (10), Sat 10 (11), 12-16 (16), 19-22 (20).
        ("2026-09-18", 20, "2026-10-22"),
        # Start on a holiday that falls on a Saturday: Oct 4-7 off; Thu Oct 8.
        ("2026-10-03", 1, "2026-10-08"),
        # Start on a make-up Saturday: Sun Oct 11 off; Mon Oct 12.
        ("2026-10-10", 1, "2026-10-12"),
    ],
)
def test_deadline_over_official_holidays(start: str, days: int, expected: str) -> None:
    result = deadline(D(start), days)
    assert result == Deadline(start=D(start), days=days, date=D(expected), provisional=False)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2026-10-10", (True, True)),  # make-up Saturday
        ("2026-10-11", (False, True)),  # ordinary Sunday
        ("2026-10-01", (False, True)),  # National Day
        ("2026-09-25", (False, True)),  # Mid-Autumn, a Friday
        ("2026-09-24", (True, True)),  # ordinary Thursday
        ("2027-01-01", (True, False)),  # no data: weekday rule
        ("2027-01-02", (False, False)),
        ("2003-01-06", (True, False)),
    ],
)
def test_is_workday(day: str, expected: tuple[bool, bool]) -> None:
    assert WorkCalendar().is_workday(D(day)) == expected


def test_deadline_into_unknown_year_is_provisional_weekday_count() -> None:
    # Sun Dec 20: Dec 21-25 (5), 28-31 (9), Fri Jan 1 2027 assumed working (10),
    # Jan 4-8 (15), Jan 11-15 (20).
    result = deadline(D("2026-12-20"), 20)
    assert result == Deadline(D("2026-12-20"), 20, D("2027-01-15"), provisional=True)
    assert result.to_json() == {
        "start": "2026-12-20",
        "days": 20,
        "deadline": "2027-01-15",
        "provisional": True,
    }


def test_override_for_2027_removes_provisional_and_moves_deadline(tmp_path: Path) -> None:
    path = tmp_path / "overrides.toml"
    path.write_text('[2027]\nholidays = ["2027-01-01..2027-01-03"]\n', encoding="utf-8")
    cal = WorkCalendar.from_file(path)
    # Jan 1 now off: Dec 21-25 (5), 28-31 (9), Jan 4-8 (14), Jan 11-15 (19), Mon Jan 18 (20).
    result = deadline(D("2026-12-20"), 20, cal)
    assert result == Deadline(D("2026-12-20"), 20, D("2027-01-18"), provisional=False)
    assert 2027 in cal.known_years()
    assert 2027 not in WorkCalendar().known_years()


def test_override_replaces_a_year_chinese_calendar_knows() -> None:
    only_oct_1_2 = YearSchedule(2026, frozenset({D("2026-10-01"), D("2026-10-02")}), frozenset())
    cal = WorkCalendar({2026: only_oct_1_2})
    # Oct 1-2 off, Sat 3/Sun 4 ordinary weekend (Oct 10 no longer make-up): Oct 5-9 (5), 12, 13.
    assert cal.deadline(D("2026-09-30"), 7).date == D("2026-10-13")
    assert cal.is_workday(D("2026-10-10")) == (False, True)


def test_example_override_file_loads() -> None:
    cal = WorkCalendar.from_file(EXAMPLE)
    assert cal.is_workday(D("2027-02-08")) == (False, True)
    assert cal.is_workday(D("2027-02-14")) == (True, True)
    assert WorkCalendar.from_file(None).known_years() == WorkCalendar().known_years()


def test_known_years_covers_library_data() -> None:
    years = WorkCalendar().known_years()
    assert {2004, 2025, 2026} <= set(years)
    assert 2100 not in years
    assert years == sorted(years)


def test_far_future_and_far_past_are_provisional() -> None:
    # 2100-01-01 is a Friday: Mon Jan 4 .. Fri Jan 8 are days 1-5.
    assert deadline(D("2100-01-01"), 5) == Deadline(D("2100-01-01"), 5, D("2100-01-08"), True)
    assert deadline(D("1999-12-31"), 1).provisional
    assert deadline(D("2099-01-01"), 366).provisional


@pytest.fixture
def empty_library_cache() -> Iterator[None]:
    """Forget every year's answer from chinese_calendar before and after the test."""
    calendar._library_has.cache_clear()
    calendar._library_schedule.cache_clear()
    yield
    calendar._library_has.cache_clear()
    calendar._library_schedule.cache_clear()


def test_each_year_is_asked_of_the_library_once(
    monkeypatch: pytest.MonkeyPatch, empty_library_cache: None
) -> None:
    asked_days: list[date] = []  # is_workday(day)
    asked_ranges: list[tuple[date, date]] = []  # get_holidays(start, end, ...)
    is_workday, get_holidays = chinese_calendar.is_workday, chinese_calendar.get_holidays

    def counting_is_workday(day: date) -> bool:
        asked_days.append(day)
        return bool(is_workday(day))

    def counting_get_holidays(start: date, end: date, *args: Any, **kwargs: Any) -> Any:
        asked_ranges.append((start, end))
        return get_holidays(start, end, *args, **kwargs)

    monkeypatch.setattr(chinese_calendar, "is_workday", counting_is_workday)
    monkeypatch.setattr(chinese_calendar, "get_holidays", counting_get_holidays)
    cal = WorkCalendar()
    starts = [D("2026-01-01") + timedelta(days=offset) for offset in range(365)]

    first = [cal.deadline(start, 20) for start in starts]
    # Without the per-year cache every counted day would ask the library (365 x 20 and more).
    # With it, building a year's schedule asks each of its weekend days once, plus one probe per
    # year; the counts reach only 2026 and January 2027 (no data in chinese_calendar 1.11).
    assert asked_days, "the counting wrappers were not called: does calendar.py still use them?"
    assert len(asked_days) == len(set(asked_days)), "a day was asked of the library twice"
    assert {day.year for day in asked_days} <= {2026, 2027}
    assert len(asked_days) <= 2 * 366  # far fewer than 365 x 20
    assert len(asked_ranges) == len(set(asked_ranges)), "a year's holidays were asked twice"
    assert len(asked_ranges) <= 2
    asked = (len(asked_days), len(asked_ranges))

    again = [cal.deadline(start, 20) for start in starts]
    assert (len(asked_days), len(asked_ranges)) == asked, "the second round asked the library"
    assert again == first


@pytest.mark.parametrize("days", [0, -1, 367])
def test_days_out_of_range(days: int) -> None:
    with pytest.raises(ValueError, match="days must be an integer from 1 to 366"):
        deadline(D("2026-09-30"), days)


def test_datetime_start_rejected() -> None:
    with pytest.raises(TypeError, match="date"):
        deadline(datetime(2026, 9, 30, 12, 0), 7)


def test_parse_date_accepts_strict_iso() -> None:
    assert parse_date("2026-10-01") == date(2026, 10, 1)


@pytest.mark.parametrize(
    "text", ["2026-13-01", "20261001", "2026-1-1", "2026-02-30", " 2026-10-01"]
)
def test_parse_date_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid date"):
        parse_date(text)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[2027]\nholidays = ["2026-12-31"]\n', r"\[2027\] holidays: 2026-12-31 is not in 2027"),
        (
            '[2027]\nholidays = ["2027-02-06..2027-02-12"]\nworkdays = ["2027-02-07"]\n',
            "2027-02-07 is in both holidays and workdays",
        ),
        (
            '[2027]\nholidays = ["2027-01-01"]\nworkdays = ["2027-01-04"]\n',
            "workday 2027-01-04 is a Monday; make-up workdays must be Saturdays or Sundays",
        ),
        ('[2027]\nholidays = ["2027-1-1"]\n', "invalid date '2027-1-1'"),
        ('[2027]\nholidays = ["2027-02-30"]\n', "invalid date '2027-02-30'"),
        ("[2027]\nholidays = [2027-01-01\n", "not valid TOML"),
        ("[2027]\nholidays = []\n", "holidays must list at least one date"),
        ("[2027]\nworkdays = []\n", "holidays must list at least one date"),
        ('[next]\nholidays = ["2027-01-01"]\n', "'next' is not a year"),
        ('[2027]\nholiday = ["2027-01-01"]\n', "unknown key"),
        ('[2027]\nholidays = ["2027-02-12..2027-02-06"]\n', "ends before it starts"),
        ("[2027]\nholidays = [20270101]\n", "must be a list of 'YYYY-MM-DD'"),
    ],
)
def test_override_file_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad-overrides.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CalendarError, match=message) as info:
        WorkCalendar.from_file(path)
    assert str(path) in str(info.value)


def test_missing_override_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(CalendarError, match="cannot read") as info:
        WorkCalendar.from_file(path)
    assert str(path) in str(info.value)
