"""The on-time verdict, in Beijing time.

A version's deadline is a day (its category's rule, `limits.py`); it ends at the end of that day
in Asia/Shanghai, and an item is on time when the first platform (the government website)
published it no later than that.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from channels.base import SHANGHAI


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
