"""The channel contract: what a channel receives, what it returns, how it fails.

    ChannelError
     ├── NotForChannel    the item does not concern this channel (an account or outlet that
     │                    carries only some agencies or domains): skipped, with the reason
     ├── RetryableError   try again later (429, 5xx, timeouts, WeChat -1/45011); may carry
     │                    `retry_after` seconds the remote asked for
     └── PermanentError   do not retry (4xx, business errors, bad credentials); the delivery
                          fails at once with the reason, for a person to look at

A channel maps its library's and the remote's errors onto these at its edge (`with
map_errors():`); only the dispatcher's job turns a `RetryableError` into an arq retry. A channel
imports nothing from `dispatcher/`: its settings, HTTP session, base URL or directory are handed
to it by its factory. Publishing twice must not post twice: each channel is idempotent by
construction (same path, same content) or passes `Publication.key` as the remote's idempotency key.
What more a channel can do (confirm a pending receipt, save remote steps, rebuild) it declares in
its registry entry (`channels/registry.py`) and implements through the protocols below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

# Beijing time: the dates readers see, and the deadlines auditors check.
SHANGHAI = ZoneInfo("Asia/Shanghai")


class ChannelError(Exception):
    """A delivery attempt failed."""


class NotForChannel(ChannelError):
    """The delivery does not concern this channel; it is skipped with this reason, unsent."""


class RetryableError(ChannelError):
    """The attempt may succeed later; `retry_after` is the remote's requested wait in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ChannelError):
    """The attempt cannot succeed as it is; retrying would only repeat the failure."""


class StateUnreadable(PermanentError):
    """A channel's own state file is unreadable (truncated, corrupt): until a person runs the
    channel's rebuild, which regenerates it from the database, what needs it fails."""


@dataclass(frozen=True)
class Publication:
    """The public representation of one item version, as every channel receives it.

    Withheld parts are not in it (they were never stored). `withheld` lists what was left out
    and on which legal basis, so a channel can say so. `action` is "publish" or "withdraw".
    """

    key: str  # "{item_id}:{version}:{channel}", stable across retries: the idempotency key
    item_id: int
    version: int
    action: str
    index_no: str | None
    agency_code: str
    agency_name: str
    domain: str
    category: str
    title: str
    summary: str
    body_html: str
    fields: Mapping[str, Any]
    withheld: tuple[Mapping[str, str], ...]
    formed_on: date
    changed_on: date | None
    decision: str | None
    project_code: str | None
    region: str
    document_number: str | None
    keywords: tuple[str, ...]
    validity: str
    change_note: str | None
    approved_at: datetime | None
    steps: Mapping[str, Any] = field(default_factory=dict)  # remote ids stored by earlier tries
    # A revision: what the version it replaces left on this channel (the newest published
    # one), for a channel whose posts cannot be edited and must be taken down (WeChat).
    replaces: Receipt | None = None
    # Chinese labels from the catalogue, so a channel shows names, not keys
    domain_name: str = ""
    category_name: str = ""
    stage: int = 0  # the category's place in its domain's process (project pages sort by it)
    field_labels: Mapping[str, str] = field(default_factory=dict)  # "candidates.rank" -> "排名"
    # A replay (`RebuildableChannel.rebuild`): when this version went live on the channel.
    confirmed_at: datetime | None = None

    @property
    def label(self) -> str:
        """主题分类 as shown: "招标投标 / 中标候选人" (keys when no labels were given)."""
        return f"{self.domain_name or self.domain} / {self.category_name or self.category}"


@dataclass(frozen=True)
class Receipt:
    """What a channel reports: live (`confirmed_at` set) or sent and awaiting confirmation.

    A pending receipt (`confirmed_at` None) names when to look again (`check_after` seconds);
    the dispatcher then calls `confirm`. `steps` are remote ids to keep for the next attempt.
    """

    external_id: str | None = None
    url: str | None = None
    confirmed_at: datetime | None = None
    check_after: float | None = None
    steps: Mapping[str, Any] = field(default_factory=dict)

    @property
    def pending(self) -> bool:
        return self.confirmed_at is None


@runtime_checkable
class Channel(Protocol):
    """One publication channel (its registry entry says what more it can do)."""

    name: str

    async def publish(self, pub: Publication) -> Receipt: ...

    async def withdraw(self, pub: Publication, receipt: Receipt) -> Receipt: ...


@runtime_checkable
class ConfirmingChannel(Channel, Protocol):
    """A channel whose receipts may pend (`Capability.CONFIRM`): sent is not yet published.

    The dispatcher calls `confirm` after the receipt's `check_after` seconds, with the pending
    receipt, until it is confirmed (live) or fails.
    """

    async def confirm(self, pub: Publication, receipt: Receipt) -> Receipt: ...


@runtime_checkable
class RebuildableChannel(Channel, Protocol):
    """A channel that can regenerate everything it holds (`Capability.REBUILD`) from a replay of
    every delivered version, oldest first; returns how many it applied. Runs in a thread."""

    def rebuild(self, publications: Iterable[Publication]) -> int: ...


@dataclass(frozen=True)
class Digest:
    """One day's digest (群发) for a channel's followers: the items it published in the window.

    `entries` are the live versions with the receipts of their own publication, newest first,
    at most the channel's limit (`left_out` more did not fit). `key` ("{channel}:{day}") is the
    remote's idempotency key. `save` records remote ids on the digest before the next call,
    like `StepStore.save`; an earlier try's are in `steps`.
    """

    key: str
    day: date
    entries: tuple[tuple[Publication, Receipt], ...]
    left_out: int
    steps: Mapping[str, Any]
    save: Callable[[Mapping[str, Any]], Awaitable[None]]


@runtime_checkable
class DigestingChannel(Channel, Protocol):
    """A channel that notifies followers once a day (`Capability.DIGEST`): at `digest_at`
    (Beijing time; None: this one is configured not to) the dispatcher hands it the day's
    items; `send_digest` returns a receipt with the remote's message id and the time sent."""

    digest_at: time | None
    digest_max: int

    async def send_digest(self, digest: Digest) -> Receipt: ...


class StepStore(Protocol):
    """Where a multi-step channel (`Capability.STEPS`) keeps each remote step's id.

    `save(pub.key, {"media_id": …})` records the ids on the delivery before the channel makes
    its next remote call, so a retry finds them in `Publication.steps` and resumes instead of
    starting over. It raises `RetryableError` if the delivery is no longer this attempt's (its
    lease ran out and another worker took it): the attempt must stop.
    """

    async def save(self, key: str, steps: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class ChannelContext:
    """What a channel factory may use: its settings section and shared I/O, all handed in.

    `settings` holds the site's keys (`base_url`, `title`, `hub_url`, `outline`: the catalogue's
    outline, `footer`: the `[site]` keys of `site_footer.KEYS`) and the channel's own section.
    `steps` is given to channels that declare `Capability.STEPS`.
    """

    name: str  # the enabled name, e.g. "media:xinhua"
    settings: Mapping[str, Any]
    session: Any  # an aiohttp.ClientSession
    data_dir: str
    steps: StepStore | None = None
    # A redis.asyncio client every worker shares (the queue's), for state that must be one
    # across workers, such as an account's access token; None outside a worker.
    redis: Any = None


ChannelFactory = Callable[[ChannelContext], Channel]


@dataclass(frozen=True)
class Inbound:
    """The answer to a remote's push to `/hooks/NAME`, and what it means for deliveries.

    `wake` names step values (`{"publish_id": "…"}`): the channel's deliveries awaiting
    confirmation whose steps hold them are confirmed now instead of at their next look. The
    push is a hint only; `confirm` still asks the remote.
    """

    status: int
    body: str
    wake: Mapping[str, str] = field(default_factory=dict)


# (the channel's settings section, HTTP method, query, body) -> the answer; must not block.
InboundHandler = Callable[[Mapping[str, Any], str, Mapping[str, str], bytes], Inbound]
