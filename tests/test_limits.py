"""Statutory time limits (dispatcher/rules/limits.py) in working days and in calendar days.

Every expected date below was counted by hand from the State Council's holiday notices (the same
schedules chinese_calendar 1.11 carries), never computed with the code under test:

2024/25  New Year's Day: Wed 2025-01-01 off.
2025     Spring Festival: Tue Jan 28 - Tue Feb 4 off; make-up Sun Jan 26, Sat Feb 8.
         National Day + Mid-Autumn: Wed Oct 1 - Wed Oct 8 off; make-up Sun Sep 28, Sat Oct 11.
2025/26  New Year's Day: Thu 2026-01-01 - Sat Jan 3 off; make-up Sun Jan 4.
2026     Spring Festival: Sun Feb 15 - Mon Feb 23 off; make-up Sat Feb 14, Sat Feb 28.
         Mid-Autumn: Fri Sep 25 - Sun Sep 27 off.
         National Day: Thu Oct 1 - Wed Oct 7 off; make-up Sun Sep 20, Sat Oct 10.
2027-    chinese_calendar 1.11 has data for 2004-2026 only: later years use Monday-Friday and
         are provisional.

working_days: the Nth working day after the start day (the start day never counts).
days (民法典 arts. 201, 203): start + N; if that day is a rest day, the next working day.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from dispatcher.rules.calendar import WorkCalendar
from dispatcher.rules.limits import (
    DECISIONS,
    Due,
    Publicity,
    TimeLimit,
    Unit,
    due,
    period_end,
    shortest_end,
)

CAL = WorkCalendar()

BID_BASIS = "《中华人民共和国招标投标法实施条例》第五十四条"
# Publish the bid candidates within 3 days of receiving the evaluation report.
THREE_DAYS = TimeLimit("deadline", 3, "days", BID_BASIS, start="收到评标报告之日")
# Announce the award within 2 working days of it.
TWO_WORKING_DAYS = TimeLimit(
    "deadline", 2, "working_days", "《中华人民共和国政府采购法实施条例》第四十三条",
    start="中标、成交供应商确定之日",
)  # fmt: skip
# A made-up calendar-day rule, long enough for the 7 working days of a decision to be earlier.
TWENTY_DAYS = TimeLimit("deadline", 20, "days", "测试用规则", start="形成之日")
# Announce an auction at least 20 days before it starts.
LAND_BASIS = "《招标拍卖挂牌出让国有建设用地使用权规定》第十条"
LEAD = TimeLimit("lead", 20, "days", LAND_BASIS, before="auction_date")

BID_PUBLICITY = Publicity(3, "days", "publicity_start", "publicity_end", BID_BASIS)
WORKING_PUBLICITY = Publicity(20, "working_days", "publicity_start", "publicity_end", "测试用规则")

DECISIONS_BASIS = "《国务院办公厅关于推进公共资源配置领域政府信息公开的意见》（国办发〔2017〕97号）"
GENERAL_BASIS = "《中华人民共和国政府信息公开条例》第二十六条"

# 条例第二十六条, as the catalogue states it wherever a law sets no other rule.
GENERAL = TimeLimit(
    "deadline", 20, "working_days", "《中华人民共和国政府信息公开条例》第二十六条",
    start="政府信息形成或者变更之日",
)  # fmt: skip


@pytest.mark.parametrize(
    ("start", "count", "expected"),
    [
        # Mon + 3 = Thu, a working day.
        pytest.param(date(2026, 3, 2), 3, date(2026, 3, 5), id="plain-week"),
        # Wed + 3 = Sat Sep 20 (ordinary rest day), Sun 21 rest too: Mon Sep 22.
        pytest.param(date(2025, 9, 17), 3, date(2025, 9, 22), id="saturday-rolls-to-monday"),
        # Wed + 3 = Sat Mar 7 (ordinary), Sun 8: Mon Mar 9.
        pytest.param(date(2026, 3, 4), 3, date(2026, 3, 9), id="saturday-rolls-to-monday-2026"),
        # Thu + 3 = Sun Sep 28, a make-up working day: no roll.
        pytest.param(date(2025, 9, 25), 3, date(2025, 9, 28), id="makeup-sunday-no-roll"),
        # Thu + 3 = Sun Sep 20, a make-up working day: no roll.
        pytest.param(date(2026, 9, 17), 3, date(2026, 9, 20), id="makeup-sunday-no-roll-2026"),
        # Wed (last holiday day) + 3 = Sat Oct 11, make-up working day: no roll.
        pytest.param(date(2025, 10, 8), 3, date(2025, 10, 11), id="makeup-saturday-no-roll"),
        # Wed + 3 = Sat Feb 14, make-up working day before Spring Festival: no roll.
        pytest.param(date(2026, 2, 11), 3, date(2026, 2, 14), id="makeup-saturday-spring-2026"),
        # Tue + 3 = Fri Oct 3, inside Oct 1-8: Thu Oct 9.
        pytest.param(date(2025, 9, 30), 3, date(2025, 10, 9), id="national-day-2025"),
        # Wed + 3 = Sat Oct 3, inside Oct 1-7: Thu Oct 8.
        pytest.param(date(2026, 9, 30), 3, date(2026, 10, 8), id="national-day-2026"),
        # Wed + 1 = Thu Oct 1, first day of Oct 1-7: Thu Oct 8.
        pytest.param(date(2026, 9, 30), 1, date(2026, 10, 8), id="one-day-into-national-day"),
        # Starting on a holiday: Oct 1 + 3 = Oct 4, inside Oct 1-7: Oct 8.
        pytest.param(date(2026, 10, 1), 3, date(2026, 10, 8), id="start-on-holiday"),
        # Tue + 3 = Fri Sep 25, Mid-Autumn Sep 25-27: Mon Sep 28.
        pytest.param(date(2026, 9, 22), 3, date(2026, 9, 28), id="mid-autumn-2026"),
        # Mon + 20 = Sun Oct 5, inside Oct 1-8: Thu Oct 9.
        pytest.param(date(2025, 9, 15), 20, date(2025, 10, 9), id="20-days-into-national-day"),
        # Mon + 20 = Sun Mar 22 (ordinary): Mon Mar 23.
        pytest.param(date(2026, 3, 2), 20, date(2026, 3, 23), id="20-days-sunday-rolls"),
        # Fri + 3 = Mon Feb 16, inside Feb 15-23: Tue Feb 24.
        pytest.param(date(2026, 2, 13), 3, date(2026, 2, 24), id="spring-festival-2026"),
        # Mon + 3 = Thu Jan 30, inside Jan 28-Feb 4: Wed Feb 5.
        pytest.param(date(2025, 1, 27), 3, date(2025, 2, 5), id="spring-festival-2025"),
        # Mon + 3 = Thu 2026-01-01, Jan 1-3 off, Sun Jan 4 is a make-up working day.
        pytest.param(date(2025, 12, 29), 3, date(2026, 1, 4), id="year-end-2025-new-year"),
        # Sun + 3 = Wed 2025-01-01 (New Year's Day): Thu Jan 2.
        pytest.param(date(2024, 12, 29), 3, date(2025, 1, 2), id="year-end-2024-new-year"),
        # Mon + 3 = Thu 2025-01-02, a working day.
        pytest.param(date(2024, 12, 30), 3, date(2025, 1, 2), id="year-end-2024-plain"),
    ],
)
def test_period_end_in_calendar_days(start: date, count: int, expected: date) -> None:
    assert period_end(CAL, start, count, "days") == (expected, False)


@pytest.mark.parametrize(
    ("start", "count", "expected"),
    [
        # Mon: Tue 3, Wed 4, Thu 5.
        pytest.param(date(2026, 3, 2), 3, date(2026, 3, 5), id="plain-week"),
        # Fri: (Sat, Sun off) Mon 9, Tue 10.
        pytest.param(date(2026, 3, 6), 2, date(2026, 3, 10), id="two-from-friday"),
        # Fri: Sat Oct 11 (make-up), (Sun 12 off) Mon 13.
        pytest.param(date(2025, 10, 10), 2, date(2025, 10, 13), id="two-from-friday-makeup-2025"),
        # Fri: Sat Oct 10 (make-up), (Sun 11 off) Mon 12.
        pytest.param(date(2026, 10, 9), 2, date(2026, 10, 12), id="two-from-friday-makeup-2026"),
        # Fri: (Sat 27 off) Sun Sep 28 is a make-up working day.
        pytest.param(date(2025, 9, 26), 1, date(2025, 9, 28), id="makeup-sunday-2025"),
        # Fri: Sat Feb 14 is a make-up working day.
        pytest.param(date(2026, 2, 13), 1, date(2026, 2, 14), id="makeup-saturday-spring-2026"),
        # Fri: Sat Feb 28 is a make-up working day.
        pytest.param(date(2026, 2, 27), 1, date(2026, 2, 28), id="makeup-saturday-after-spring"),
        # Fri: (Sat 25 off) Sun Jan 26 (make-up), Mon Jan 27.
        pytest.param(date(2025, 1, 24), 2, date(2025, 1, 27), id="makeup-sunday-spring-2025"),
        # Tue: Oct 1-8 off; Thu Oct 9, Fri Oct 10.
        pytest.param(date(2025, 9, 30), 2, date(2025, 10, 10), id="two-over-national-day-2025"),
        # Wed: Oct 1-7 off; Thu Oct 8, Fri Oct 9.
        pytest.param(date(2026, 9, 30), 2, date(2026, 10, 9), id="two-over-national-day-2026"),
        # Fri: Sat Feb 14 (make-up), Feb 15-23 off, Tue Feb 24.
        pytest.param(date(2026, 2, 13), 2, date(2026, 2, 24), id="two-over-spring-festival"),
        # Mon: Sep 22-24 (3), Sep 25-27 off, 28-30 (6), Oct 1-7 off, Oct 8, 9 (8), Sat 10 (9),
        # Oct 12-16 (14), 19-23 (19), Mon 26 (20).
        pytest.param(date(2026, 9, 21), 20, date(2026, 10, 26), id="twenty-over-national-day"),
        # Tue: Feb 11-13 (3), Sat 14 (4), Feb 15-23 off, 24-27 (8), Sat 28 (9), Mar 2-6 (14),
        # 9-13 (19), Mon 16 (20).
        pytest.param(date(2026, 2, 10), 20, date(2026, 3, 16), id="twenty-over-spring-festival"),
        # Fri: Nov 23-27 (5), Nov 30-Dec 4 (10), Dec 7-11 (15), Dec 14-18 (20).
        pytest.param(date(2026, 11, 20), 20, date(2026, 12, 18), id="twenty-plain"),
        # Wed Dec 31: Jan 1-3 off, Sun 2026-01-04 is a make-up working day.
        pytest.param(date(2025, 12, 31), 1, date(2026, 1, 4), id="year-end-makeup-sunday"),
        # Tue: Dec 31 (1), Jan 1-3 off, Sun Jan 4 (2), Mon Jan 5 (3).
        pytest.param(date(2025, 12, 30), 3, date(2026, 1, 5), id="year-end-2025-three"),
        # Mon: Dec 16-19 (4), 22-26 (9), 29-31 (12), Sun Jan 4 (13), Jan 5-9 (18),
        # (Sat 10, Sun 11 off) Mon 12 (19), Tue 13 (20).
        pytest.param(date(2025, 12, 15), 20, date(2026, 1, 13), id="year-end-2025-twenty"),
        # Tue Dec 31: Wed 2025-01-01 (New Year's Day) off, Thu Jan 2.
        pytest.param(date(2024, 12, 31), 1, date(2025, 1, 2), id="year-end-2024-new-year"),
    ],
)
def test_period_end_in_working_days(start: date, count: int, expected: date) -> None:
    assert period_end(CAL, start, count, "working_days") == (expected, False)


@pytest.mark.parametrize(
    ("limit", "start", "decision", "expected", "rule"),
    [
        # 20 working days from Mon Sep 21 (see twenty-over-national-day): Oct 26.
        pytest.param(GENERAL, date(2026, 9, 21), None, date(2026, 10, 26), GENERAL,
                     id="general-no-decision"),
        # Decision: Sep 22-24 (3), Sep 25-27 off, 28-30 (6), Oct 1-7 off, Thu Oct 8 (7),
        # earlier than Oct 26.
        pytest.param(GENERAL, date(2026, 9, 21), "administrative_penalty", date(2026, 10, 8),
                     DECISIONS, id="general-penalty-seven-working-days"),
        # Decision: Feb 11-13 (3), Sat 14 (4), Feb 15-23 off, 24-26 (7); GENERAL would be Mar 16.
        pytest.param(GENERAL, date(2026, 2, 10), "administrative_permit", date(2026, 2, 26),
                     DECISIONS, id="general-permit-over-spring-festival"),
        # Own 2 working days: Oct 8, 9; a decision's 7 (Oct 15) is later.
        pytest.param(TWO_WORKING_DAYS, date(2026, 9, 30), "administrative_penalty",
                     date(2026, 10, 9), TWO_WORKING_DAYS, id="two-working-days-keeps-own"),
        # Own 3 days: Sat Oct 3 -> Thu Oct 8; a decision's 7 working days: Oct 8, 9, Sat 10,
        # 12-15 -> Oct 15, later.
        pytest.param(THREE_DAYS, date(2026, 9, 30), "administrative_permit", date(2026, 10, 8),
                     THREE_DAYS, id="three-days-keeps-own"),
        pytest.param(THREE_DAYS, date(2026, 9, 30), None, date(2026, 10, 8), THREE_DAYS,
                     id="three-days-national-day"),
        # Own 20 days: Sun Mar 22 -> Mon Mar 23; decision: Mar 3-6 (4), 9-11 (7) -> Mar 11.
        pytest.param(TWENTY_DAYS, date(2026, 3, 2), "administrative_penalty", date(2026, 3, 11),
                     DECISIONS, id="twenty-days-penalty-seven-working-days"),
    ],
)  # fmt: skip
def test_due_deadline_and_decision_rule(
    limit: TimeLimit, start: date, decision: str | None, expected: date, rule: TimeLimit
) -> None:
    found = due(CAL, limit, start, decision=decision)
    assert found == Due(expected, False, rule, start)
    assert found.rule is rule


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        # Wed Oct 21 - 20 = Thu Oct 1, a holiday: not rolled.
        pytest.param(date(2026, 10, 21), date(2026, 10, 1), id="holiday-not-rolled"),
        # Sat Mar 21 - 20 = Sun Mar 1, an ordinary rest day: not rolled.
        pytest.param(date(2026, 3, 21), date(2026, 3, 1), id="sunday-not-rolled"),
        # Sat 2026-01-10 - 20 = Sun 2025-12-21 (back across the year end): not rolled.
        pytest.param(date(2026, 1, 10), date(2025, 12, 21), id="across-year-end"),
        # Fri Nov 20 - 20 = Sat Oct 31.
        pytest.param(date(2026, 11, 20), date(2026, 10, 31), id="saturday-not-rolled"),
    ],
)
def test_lead_time_is_the_event_less_count_days_not_rolled(event: date, expected: date) -> None:
    found = due(CAL, LEAD, date(2026, 1, 1), event=event)
    assert found == Due(expected, False, LEAD, event)


def test_lead_time_needs_the_event() -> None:
    with pytest.raises(ValueError, match="auction_date"):
        due(CAL, LEAD, date(2026, 9, 1))


@pytest.mark.parametrize(
    ("rule", "start", "expected"),
    [
        # Wed + 3 = Sat Oct 3, inside Oct 1-7: Thu Oct 8.
        pytest.param(BID_PUBLICITY, date(2026, 9, 30), date(2026, 10, 8), id="3-days-holiday"),
        # Wed + 3 = Sat Sep 20 (ordinary): Mon Sep 22.
        pytest.param(BID_PUBLICITY, date(2025, 9, 17), date(2025, 9, 22), id="3-days-saturday"),
        # Thu + 3 = Sun Sep 28, a make-up working day.
        pytest.param(BID_PUBLICITY, date(2025, 9, 25), date(2025, 9, 28), id="3-days-makeup"),
        # As twenty-over-national-day.
        pytest.param(WORKING_PUBLICITY, date(2026, 9, 21), date(2026, 10, 26),
                     id="20-working-days-national-day"),
        # As twenty-over-spring-festival.
        pytest.param(WORKING_PUBLICITY, date(2026, 2, 10), date(2026, 3, 16),
                     id="20-working-days-spring-festival"),
    ],
)  # fmt: skip
def test_shortest_end_of_a_publicity_period(rule: Publicity, start: date, expected: date) -> None:
    assert shortest_end(CAL, rule, start) == expected


def test_library_data_ends_in_2026() -> None:
    """The premise of the provisional cases: 2026 is known, 2027 and 2028 are not."""
    years = CAL.known_years()
    assert 2026 in years
    assert 2027 not in years
    assert 2028 not in years


@pytest.mark.parametrize(
    ("start", "unit", "expected"),
    [
        # Wed + 3 = Sat Mar 4; Monday-Friday rule: Mon Mar 6.
        pytest.param(date(2028, 3, 1), "days", date(2028, 3, 6), id="days-2028"),
        # Wed: Thu 2, Fri 3, Mon 6.
        pytest.param(date(2028, 3, 1), "working_days", date(2028, 3, 6), id="working-days-2028"),
        # Wed 2026-12-30 + 3 = Sat 2027-01-02; Monday-Friday rule: Mon Jan 4.
        pytest.param(date(2026, 12, 30), "days", date(2027, 1, 4), id="days-into-2027"),
        # Wed 2026-12-30: Thu Dec 31, Fri 2027-01-01 (weekday rule), Mon Jan 4.
        pytest.param(date(2026, 12, 30), "working_days", date(2027, 1, 4),
                     id="working-days-into-2027"),
    ],
)  # fmt: skip
def test_a_year_without_calendar_data_is_provisional(
    start: date, unit: Unit, expected: date
) -> None:
    assert period_end(CAL, start, 3, unit) == (expected, True)


def test_a_lead_time_in_a_year_without_calendar_data_is_provisional() -> None:
    # Tue 2028-03-21 - 20 = Wed 2028-03-01.
    event = date(2028, 3, 21)
    assert due(CAL, LEAD, event, event=event) == Due(date(2028, 3, 1), True, LEAD, event)


OVERRIDE_2028 = """\
[2028]
holidays = ["2028-01-01..2028-01-03"]  # made up for the test
workdays = ["2028-03-04"]              # a make-up Saturday, made up for the test
"""


@pytest.fixture
def cal_2028(tmp_path: Path) -> WorkCalendar:
    path = tmp_path / "overrides.toml"
    path.write_text(OVERRIDE_2028, encoding="utf-8")
    return WorkCalendar.from_file(path)


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        # Wed + 3 = Sat Mar 4, a make-up working day in the override: no roll.
        pytest.param("days", date(2028, 3, 4), id="days"),
        # Wed: Thu 2, Fri 3, Sat 4 (make-up in the override).
        pytest.param("working_days", date(2028, 3, 4), id="working-days"),
    ],
)
def test_an_override_file_makes_the_year_known(
    cal_2028: WorkCalendar, unit: Unit, expected: date
) -> None:
    assert period_end(cal_2028, date(2028, 3, 1), 3, unit) == (expected, False)


def test_an_override_file_makes_a_lead_time_known(cal_2028: WorkCalendar) -> None:
    event = date(2028, 3, 21)
    assert due(cal_2028, LEAD, event, event=event) == Due(date(2028, 3, 1), False, LEAD, event)


@pytest.mark.parametrize(
    ("limit", "start", "decision", "event", "expected"),
    [
        pytest.param(
            THREE_DAYS, date(2026, 9, 30), None, None,
            {"version": 2, "kind": "deadline", "count": 3, "unit": "days",
             "from": "收到评标报告之日", "basis": BID_BASIS, "start": "2026-09-30"},
            id="deadline-days",
        ),
        pytest.param(
            GENERAL, date(2026, 11, 20), None, None,
            {"version": 2, "kind": "deadline", "count": 20, "unit": "working_days",
             "from": "政府信息形成或者变更之日", "basis": GENERAL_BASIS, "start": "2026-11-20"},
            id="general",
        ),
        pytest.param(
            GENERAL, date(2026, 9, 21), "administrative_penalty", None,
            {"version": 2, "kind": "deadline", "count": 7, "unit": "working_days",
             "from": "行政许可、行政处罚决定作出之日", "basis": DECISIONS_BASIS,
             "start": "2026-09-21"},
            id="decision",
        ),
        pytest.param(
            LEAD, date(2026, 9, 1), None, date(2026, 10, 21),
            {"version": 2, "kind": "lead", "count": 20, "unit": "days",
             "before": "auction_date", "basis": LAND_BASIS, "start": "2026-10-21"},
            id="lead-starts-at-event",
        ),
    ],
)  # fmt: skip
def test_due_to_json(
    limit: TimeLimit,
    start: date,
    decision: str | None,
    event: date | None,
    expected: dict[str, Any],
) -> None:
    assert due(CAL, limit, start, decision=decision, event=event).to_json() == expected
