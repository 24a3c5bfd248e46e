"""What a worker holds while it sends a delivery, and what it is told when it must wait."""

from __future__ import annotations

from dataclasses import dataclass

from channels.base import Publication, Receipt


@dataclass(frozen=True)
class Claim:
    """A leased delivery: what to send, and the receipt a withdraw or confirm works from."""

    id: int
    key: str
    channel: str
    action: str
    attempt: int
    confirming: bool
    publication: Publication
    receipt: Receipt | None


@dataclass(frozen=True)
class Later:
    """Not yet: look again after `delay` seconds (scheduled, or waiting for an older one)."""

    delay: float


def delivery_key(item_id: int, version: int, channel: str) -> str:
    return f"{item_id}:{version}:{channel}"
