"""Working-day arithmetic for statutory disclosure deadlines on China's official calendar.

The deadline for ``days`` working days after ``start`` is the Nth working day after ``start``;
the start day itself is never counted, whether or not it is a working day.

A year's schedule comes from, in order: an override file (which may also replace a year
``chinese_calendar`` knows), then ``chinese_calendar``, then the plain rule "Monday to Friday".
The last case never raises; it marks the deadline ``provisional`` so callers can say the date
may move once the State Council publishes that year's schedule (usually in November or
December of the previous year). ``chinese_calendar`` is asked year by year (its range is not
hard-coded) and every year's answer is cached, so a count touches at most a few dozen set
lookups per year.

``datetime.datetime`` values are refused: a ``datetime`` never equals a ``date``, so it would
silently miss every holiday, and which local day it denotes is the caller's decision.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import chinese_calendar

from dispatcher.errors import ConfigurationError

MAX_DAYS = 366
PROBE_AHEAD = 30  # known_years() looks this many years past the current one
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_YEAR_RE = re.compile(r"[0-9]{4}")
_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Deadline:
    start: dt.date
    days: int
    date: dt.date  # the Nth working day after start
    provisional: bool  # some day counted lay in a year without calendar data

    def to_json(self) -> dict[str, object]:
        return {
            "start": self.start.isoformat(),
            "days": self.days,
            "deadline": self.date.isoformat(),
            "provisional": self.provisional,
        }


class CalendarError(ConfigurationError):
    """An override file is unreadable or inconsistent."""


@dataclass(frozen=True)
class YearSchedule:
    year: int
    holidays: frozenset[date]  # official days off (weekend days listed here are harmless)
    workdays: frozenset[date]  # make-up working days on Saturdays and Sundays (调休上班)


def parse_date(text: str) -> date:
    """Parse a strict ``YYYY-MM-DD`` date."""
    if not isinstance(text, str) or not _DATE_RE.fullmatch(text):
        raise ValueError(f"invalid date {text!r}: expected YYYY-MM-DD, e.g. 2026-10-01")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"invalid date {text!r}: {exc}") from None


@functools.cache
def _library_has(year: int) -> bool:
    try:
        chinese_calendar.is_workday(date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


@functools.cache
def _library_schedule(year: int) -> YearSchedule | None:
    if not _library_has(year):
        return None
    first, last = date(year, 1, 1), date(year, 12, 31)
    # include_weekends=False returns exactly the listed holidays, weekend ones included.
    holidays = frozenset(chinese_calendar.get_holidays(first, last, include_weekends=False))
    every_day = (first + timedelta(n) for n in range((last - first).days + 1))
    workdays = frozenset(
        d for d in every_day if d.weekday() >= 5 and chinese_calendar.is_workday(d)
    )
    return YearSchedule(year, holidays, workdays)


class WorkCalendar:
    """China's working days: overrides, then ``chinese_calendar``, then Monday–Friday."""

    def __init__(self, overrides: Mapping[int, YearSchedule] | None = None) -> None:
        self._overrides: dict[int, YearSchedule] = dict(overrides or {})
        for year, schedule in self._overrides.items():
            if schedule.year != year:
                raise ValueError(f"override keyed {year} holds the schedule for {schedule.year}")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str] | None) -> WorkCalendar:
        """Load overrides from a TOML file (see calendar_overrides.example.toml); None: none."""
        if path is None:
            return cls()
        return cls(_load_overrides(os.fspath(path)))

    def _schedule(self, year: int) -> YearSchedule | None:
        if year in self._overrides:
            return self._overrides[year]
        return _library_schedule(year)

    def is_workday(self, day: date) -> tuple[bool, bool]:
        """Return (is a working day, known); known is False when only the weekday rule applied."""
        if isinstance(day, dt.datetime):
            raise TypeError("is_workday() needs a date, not a datetime")
        schedule = self._schedule(day.year)
        if schedule is None:
            return day.weekday() < 5, False
        if day in schedule.workdays:
            return True, True
        return day.weekday() < 5 and day not in schedule.holidays, True

    def source(self, year: int) -> str | None:
        """Where `year`'s schedule comes from: "overrides", "chinese_calendar", or None (no
        data: Monday to Friday, provisional)."""
        if year in self._overrides:
            return "overrides"
        return None if self._schedule(year) is None else "chinese_calendar"

    def known_years(self) -> list[int]:
        """Years with real schedule data (overrides plus ``chinese_calendar``), ascending."""
        years = set(self._overrides)
        years.update(y for y in range(1900, date.today().year + PROBE_AHEAD) if _library_has(y))
        return sorted(years)

    def deadline(self, start: date, days: int) -> Deadline:
        """The ``days``-th working day after ``start`` (``start`` itself not counted)."""
        if isinstance(start, dt.datetime) or not isinstance(start, date):
            raise TypeError(f"start must be a date, not {type(start).__name__}")
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
            raise ValueError(f"days must be an integer from 1 to {MAX_DAYS}, got {days!r}")
        day, counted, provisional = start, 0, False
        while counted < days:
            day += _ONE_DAY
            working, known = self.is_workday(day)
            provisional = provisional or not known
            counted += working
        return Deadline(start=start, days=days, date=day, provisional=provisional)


_DEFAULT = WorkCalendar()


def deadline(start: date, days: int, calendar: WorkCalendar | None = None) -> Deadline:
    """Module-level shortcut for ``(calendar or WorkCalendar()).deadline(start, days)``."""
    return (calendar or _DEFAULT).deadline(start, days)


def _load_overrides(path: str) -> dict[int, YearSchedule]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise CalendarError(f"{path}: cannot read calendar overrides: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CalendarError(f"{path}: not valid TOML: {exc}") from None
    schedules: dict[int, YearSchedule] = {}
    try:
        for key, table in data.items():
            if not _YEAR_RE.fullmatch(key):
                raise ValueError(f"top-level key {key!r} is not a year; use tables like [2027]")
            schedules[int(key)] = _year_schedule(int(key), table)
    except ValueError as exc:
        raise CalendarError(f"{path}: {exc}") from None
    return schedules


def _year_schedule(year: int, table: object) -> YearSchedule:
    key = str(year)
    if not isinstance(table, dict):
        raise ValueError(f"[{key}] must be a table with 'holidays' and 'workdays' lists")
    unknown = sorted(set(table) - {"holidays", "workdays"})
    if unknown:
        raise ValueError(f"[{key}] has unknown key(s) {unknown}; expected holidays, workdays")
    holidays = _date_list(year, "holidays", table.get("holidays", []))
    workdays = _date_list(year, "workdays", table.get("workdays", []))
    if not holidays:
        raise ValueError(f"[{key}] holidays must list at least one date")
    both = sorted(holidays & workdays)
    if both:
        raise ValueError(f"[{key}] {both[0].isoformat()} is in both holidays and workdays")
    weekdays = sorted(d for d in workdays if d.weekday() < 5)
    if weekdays:
        day = weekdays[0]
        raise ValueError(
            f"[{key}] workday {day.isoformat()} is a {day:%A}; "
            "make-up workdays must be Saturdays or Sundays (weekdays are workdays anyway)"
        )
    return YearSchedule(year, frozenset(holidays), frozenset(workdays))


def _date_list(year: int, name: str, items: object) -> set[date]:
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"[{year}] {name} must be a list of 'YYYY-MM-DD' or 'A..B' strings")
    days: set[date] = set()
    for item in items:
        first_text, sep, last_text = item.partition("..")
        first = parse_date(first_text.strip())
        last = parse_date(last_text.strip()) if sep else first
        if last < first:
            raise ValueError(f"[{year}] {name}: range {item!r} ends before it starts")
        for day in (first, last):
            if day.year != year:
                raise ValueError(f"[{year}] {name}: {day.isoformat()} is not in {year}")
        days.update(first + timedelta(n) for n in range((last - first).days + 1))
    return days
