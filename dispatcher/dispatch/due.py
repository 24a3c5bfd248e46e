"""When a delivery is due: the one rule the claim, the queue and the sweeper go by.

A delivery waiting in `pending`, `retrying` or `confirming` is due at its `next_attempt_at`; one
in `sending` whose lease ran out (its worker died) is due again at once. A job may start up to
`EARLY_SLACK` before its time: arq's deferral and the clocks of several machines are not exact,
and sending a second early beats a round trip through the queue.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from dispatcher.rules.states import DeliveryStatus
from dispatcher.storage.models import deliveries

EARLY_SLACK = timedelta(seconds=1)


def wait_before(at: datetime | None, now: datetime) -> float | None:
    """Seconds to wait before a delivery due at `at` may start; None if it may start now."""
    if at is None or at <= now + EARLY_SLACK:
        return None
    return (at - now).total_seconds()


def waiting_and_due(row: Any, now: datetime) -> float | None:
    """For a claimable row: the seconds it must still wait (None: it is due now)."""
    if row.status in DeliveryStatus.waiting():
        return wait_before(row.next_attempt_at, now)
    return None


def lease_expired(row: Any, now: datetime) -> bool:
    """A `sending` row whose worker's lease ran out: another may take it."""
    return bool(
        row.status == DeliveryStatus.SENDING
        and row.lease_until is not None
        and row.lease_until < now
    )


def claimable(row: Any, now: datetime) -> bool:
    """Not finished, and not in the hands of a worker whose lease still runs."""
    return row.status in DeliveryStatus.waiting() or lease_expired(row, now)


def due_by(moment: datetime, now: datetime) -> sa.ColumnElement[bool]:
    """SQL: waiting rows due at or before `moment`, and rows whose lease ran out by `now`."""
    return sa.or_(
        sa.and_(
            deliveries.c.status.in_(DeliveryStatus.waiting()),
            deliveries.c.next_attempt_at <= moment,
        ),
        sa.and_(deliveries.c.status == DeliveryStatus.SENDING, deliveries.c.lease_until < now),
    )
