"""The names of states and kinds, each defined once (`StrEnum`: they are the strings stored).

An item and its versions move `submitted` → `approved` | `scheduled` → (a revision: `submitted`
again) … → `withdrawn`; an older version becomes `superseded` once a newer one is approved. A
delivery moves `pending` → `sending` (leased by one worker) → `published` | `withdrawn` (a
takedown confirmed) | `retrying` → … | `failed`, with `confirming` (sent, not yet confirmed
live) and `skipped` (superseded or withdrawn before it started, or nothing to take down).
The two `withdrawn` are different things that share a word: an item withdrawn by its
approver, and a delivery whose takedown a channel confirmed.
"""

from __future__ import annotations

from enum import StrEnum


class ItemStatus(StrEnum):
    """An item's status, and its versions'; `superseded` applies to versions only."""

    SUBMITTED = "submitted"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    SUPERSEDED = "superseded"
    WITHDRAWN = "withdrawn"


# What `GET /items?status=` accepts: an item is never `superseded`, only its versions.
ITEM_STATES = tuple(s for s in ItemStatus if s is not ItemStatus.SUPERSEDED)


class VersionKind(StrEnum):
    ORIGINAL = "original"
    REVISION = "revision"
    WITHDRAWAL = "withdrawal"


class Action(StrEnum):
    """What a delivery asks of its channel."""

    PUBLISH = "publish"
    WITHDRAW = "withdraw"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    CONFIRMING = "confirming"
    RETRYING = "retrying"
    PUBLISHED = "published"  # a publish action confirmed live
    WITHDRAWN = "withdrawn"  # a withdraw action confirmed: taken down
    FAILED = "failed"
    SKIPPED = "skipped"

    @classmethod
    def waiting(cls) -> tuple[DeliveryStatus, ...]:
        """Not finished and not in a worker's hands: due at `next_attempt_at`."""
        return (cls.PENDING, cls.RETRYING, cls.CONFIRMING)

    @classmethod
    def final(cls) -> tuple[DeliveryStatus, ...]:
        return (cls.PUBLISHED, cls.WITHDRAWN, cls.FAILED, cls.SKIPPED)

    @classmethod
    def confirmed(cls) -> tuple[DeliveryStatus, ...]:
        """A channel confirmed the attempt: published, or taken down."""
        return (cls.PUBLISHED, cls.WITHDRAWN)

    @classmethod
    def live(cls, action: str) -> DeliveryStatus:
        """The state a confirmed attempt of `action` ends in."""
        return cls.PUBLISHED if action == Action.PUBLISH else cls.WITHDRAWN


class DigestStatus(StrEnum):
    """A daily digest (群发) of one account: `pending` → `sending` (leased) → `sent` | back to
    `pending` (deferred: busy, or no quota until the next window) | `failed`; `merged` into the
    next day's when it was still unsent then; `skipped` when nothing in its window was live."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    MERGED = "merged"
    SKIPPED = "skipped"
    FAILED = "failed"


class Role(StrEnum):
    EDITOR = "editor"
    APPROVER = "approver"
    AUDITOR = "auditor"
    ADMIN = "admin"
