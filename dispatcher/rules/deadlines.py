"""Statutory time limits and the on-time verdict, in Beijing time.

条例第二十六条: active disclosure within 20 working days of the day the information was formed or
changed, unless a law says otherwise (a category's `deadline_days` in the catalogue may be
stricter); 双公示: administrative permit and penalty decisions within 7 working days of the
decision. The deadline is the end of its day in Asia/Shanghai, and an item is on time when the
first platform (the government website) published it no later than that.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from channels.base import SHANGHAI

ADMINISTRATIVE_DECISION_DAYS = 7  # 行政许可、行政处罚决定


def working_days(category_days: int, decision: str | None) -> int:
    """The working days allowed: the category's, or at most 7 for a permit or penalty decision."""
    if decision is not None:
        return min(category_days, ADMINISTRATIVE_DECISION_DAYS)
    return category_days


def deadline_end(day: date) -> datetime:
    """The last instant of a deadline day, Asia/Shanghai."""
    return datetime.combine(day + timedelta(days=1), time(), SHANGHAI)


def on_time(published_at: datetime | None, deadline: date | None) -> bool | None:
    """Published before the end of the deadline day (Beijing time); None while unpublished.

    The one verdict: the audit's, and intake's check of a `publish_at`."""
    if published_at is None or deadline is None:
        return None
    return published_at < deadline_end(deadline)


def today() -> date:
    """Today in Beijing: the day a change is dated, and the latest a formation date may be."""
    return datetime.now(SHANGHAI).date()
