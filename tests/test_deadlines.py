"""The on-time verdict is one rule: the audit's `on_time` and intake's check of `publish_at`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from dispatcher.errors import InputError
from dispatcher.rules.deadlines import deadline_end, on_time
from dispatcher.rules.intake import check_item
from dispatcher.rules.rulebook import Rules
from tests.helpers import CENTER, bid_candidates

DEADLINE = date(2026, 11, 23)  # bid candidates: 2026-11-20 (Friday) + 3 days, a Monday
END = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # 2026-11-24 00:00 in Beijing


@pytest.mark.parametrize(
    ("published", "verdict"),
    [
        (END - timedelta(microseconds=1), True),  # 23:59:59.999999 on the deadline day
        (END, False),  # the next day has begun in Beijing
        (None, None),
    ],
)
def test_on_time_is_before_the_end_of_the_deadline_day_in_beijing(
    published: datetime | None, verdict: bool | None
) -> None:
    assert deadline_end(DEADLINE) == END
    assert on_time(published, DEADLINE) is verdict


@pytest.mark.parametrize(("at", "late"), [(END - timedelta(microseconds=1), False), (END, True)])
def test_a_release_after_the_deadline_needs_a_reason(
    rules: Rules, at: datetime, late: bool
) -> None:
    item = bid_candidates(publish_at=at.isoformat())
    if late:
        with pytest.raises(InputError, match="late_reason"):
            check_item(item, rules, CENTER)
        item["late_reason"] = "待上级批复"
    draft = check_item(item, rules, CENTER)
    assert draft.values["deadline"] == DEADLINE
