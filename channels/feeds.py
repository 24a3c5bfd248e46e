"""The feeds channel: Atom 1.0 and RSS 2.0 feeds of the newest entries, with WebSub pings.

Target: static files under `<data_dir>/site/` at the places `channels.paths.feed_file` names —
the site-wide feed and one per domain, agency and region (`feeds/all.atom`,
`feeds/domains/bidding.rss`, …) — served with the website at `settings["base_url"]`, and the
WebSub hub at `settings["hub_url"]` if one is set. A delivery is confirmed when the written feeds
hold its entry: after writing, the files are read back and must contain the entry id.

Limits and quirks:

- One entry per item, not per version: id `tag:{host of base_url},2026:item:{item_id}`, link
  `{base_url}/items/{item_id}.html`, category the domain / category names, author the agency.
  A higher version replaces the entry in every feed it belongs to (same id, new `updated`, its
  change note in the content); a version that is not newer changes nothing (a late, older
  delivery never overwrites); the same version as a withdrawal does. A withdrawal keeps the
  entry, titled 【已撤回】 with the reason. An item whose domain, agency or region changed leaves
  the old feed (which then shows one entry fewer until the next one arrives).
- Each feed holds its newest 50 entries by `updated`. `published` is when the item first entered
  the feeds and `updated` when its current version did (strictly increasing per entry): feed
  time, not approval time, so a scheduled release or a late retry still shows at the top.
- State lives in `<data_dir>/state/feeds/`, not in the public site (`channels.feed_state`): one
  file per feed with only its newest entries, and one small record per item. A delivery reads and
  writes a bounded number of small files, whatever the number of items ever published. An
  unreadable state file is a `StateUnreadable` naming it and `gongkai feeds rebuild`, logged at
  ERROR once and marked in `state/feeds/BROKEN` for `/readyz` and `/metrics` until the rebuild
  regenerates the state from the database. The `site/feeds/all.json` of
  earlier versions is no longer read; it can be deleted.
- Bursts are coalesced: the first delivery opens a window of `settings["feeds_window"]` seconds
  (default 0.2); every delivery that arrives in it, in this process, joins one flush. The flush
  runs in a thread under an exclusive `flock` on `state/feeds/.lock` (shared by all processes of
  the machine): it applies the deliveries in arrival order, renders each touched feed once and
  replaces a file (atomically: temp file, fsync, rename) only if its bytes changed, then writes
  the state. Deliveries arriving during a flush wait for the next window. A caller waits at most
  `WAIT_LIMIT` seconds (then a RetryableError; the retry is idempotent). An error of the flush
  reaches every delivery in it, mapped by `channels.files.map_errors`; an unreadable state file
  fails only the deliveries that need it.
- WebSub (`channels.websub`): every feed links its hub (`rel="hub"`, in RSS as `atom:link`).
  After a flush, each rewritten feed URL is pinged (one `hub.url` per request) before the
  deliveries of that flush return — a few tries with a short backoff, bounded to seconds. A ping
  that still fails is logged and dropped: the feed is written and the delivery confirmed, and
  the hub learns of the topic at its next change. No session (unit tests) means no pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from channels import paths
from channels.base import (
    ChannelContext,
    ChannelError,
    PermanentError,
    Publication,
    Receipt,
    RetryableError,
)
from channels.feed_render import TAG_YEAR, WITHDRAWN_PREFIX, Site, contains, feed_title, render
from channels.feed_render import xml_text as _text
from channels.feed_state import ALL, Entry, FeedKey, StateStore
from channels.files import DEFAULT_TITLE, locked, map_errors, site_base_url, write_atomic
from channels.registry import Capability, ChannelSpec
from channels.websub import Hub, hub_url

__all__ = ["FEED_LIMIT", "TAG_YEAR", "WITHDRAWN_PREFIX", "FeedsChannel", "feeds_factory"]

log = logging.getLogger(__name__)

FEED_LIMIT = 50
WINDOW = 0.2  # seconds a flush waits for more deliveries to join it
WAIT_LIMIT = 120.0  # seconds a delivery waits for its flush (and its pings)
_TICK = timedelta(microseconds=1)
Outcome = datetime | ChannelError  # confirmed at, or why not


@dataclass
class _Delivery:
    """One publish or withdraw waiting for a flush."""

    entry: Entry  # without `published` and `updated`: the flush sets them
    feeds: dict[FeedKey, str]  # the feeds the entry belongs to -> their titles
    future: asyncio.Future[datetime] = field(repr=False)


@dataclass
class _Flushed:
    """What a flush did: one outcome per delivery and the feed URLs it rewrote."""

    outcomes: list[Outcome]
    topics: list[str]


class FeedsChannel:
    """Keeps the site-wide, domain, agency and region feeds: one entry per item, newest first."""

    name = "feeds"

    def __init__(
        self,
        site: Site,
        site_dir: Path,
        state_dir: Path,
        *,
        limit: int = FEED_LIMIT,
        window: float = WINDOW,
        hub: Hub | None = None,
    ) -> None:
        self.site = site
        self.site_dir = site_dir
        self.state_dir = state_dir
        self.limit = limit
        self.window = window
        self.hub = hub
        self._pending: list[_Delivery] = []
        self._flusher: asyncio.Task[None] | None = None
        self._settling: set[asyncio.Task[None]] = set()  # strong references until done

    async def publish(self, pub: Publication) -> Receipt:
        return await self._deliver(pub, withdrawn=pub.action == "withdraw")

    async def withdraw(self, pub: Publication, receipt: Receipt) -> Receipt:
        return await self._deliver(pub, withdrawn=True)

    def write_feed(self, path: Path, data: bytes) -> None:
        """Replace one feed file (a hook: tests subclass it to count the rewrites)."""
        write_atomic(path, data)

    async def _deliver(self, pub: Publication, *, withdrawn: bool) -> Receipt:
        delivery = self._delivery(pub, withdrawn)
        self._pending.append(delivery)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        try:
            confirmed_at = await asyncio.wait_for(delivery.future, WAIT_LIMIT)
        except TimeoutError:
            raise RetryableError(f"feeds: not flushed within {WAIT_LIMIT:g} s") from None
        return Receipt(
            external_id=delivery.entry["id"],
            url=self.site.feed_url(ALL, "atom"),
            confirmed_at=confirmed_at,
        )

    def _delivery(self, pub: Publication, withdrawn: bool) -> _Delivery:
        entry, feeds = self._entry(pub, withdrawn)
        return _Delivery(entry, feeds, asyncio.get_running_loop().create_future())

    def _entry(self, pub: Publication, withdrawn: bool) -> tuple[Entry, dict[FeedKey, str]]:
        """The item's feed entry and the feeds it belongs in (key -> title)."""
        try:
            entry_id = self.site.entry_id(pub.item_id)
            url = f"{self.site.base_url}/{paths.item_file(pub.item_id)}"
            feeds = {ALL: _text(self.site.title)}
            for kind, code, label in (
                ("domains", pub.domain, pub.domain_name),
                ("agencies", pub.agency_code, pub.agency_name),
                ("regions", pub.region, ""),
            ):
                if code:  # an item without a region is in no region feed
                    key = FeedKey(kind, code)
                    key.file("atom")  # validates the code (a domain key must be a key)
                    feeds[key] = _text(feed_title(self.site, key, label))
        except ValueError as exc:
            raise PermanentError(f"feeds: {exc}") from exc
        entry: Entry = {
            "id": entry_id,
            "item_id": pub.item_id,
            "title": _text(pub.title),
            "summary": _text(pub.summary),
            "url": url,
            "category": _text(pub.label),
            "author": _text(pub.agency_name),
            "withdrawn": withdrawn,
            "change_note": _text(pub.change_note) or None,
            "version": pub.version,
        }
        return entry, feeds

    def rebuild(self, publications: Iterable[Publication]) -> int:
        """Regenerate every feed and the feeds' state from `publications` (every version the
        feeds confirmed, in that order, each with its `confirmed_at`): what a corrupt or lost
        state file needs. Runs in a thread, under the feeds' lock; returns how many it applied.
        Feed files no entry belongs in any more are removed; the hub is not pinged."""
        with map_errors("feeds"):
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with locked(self.state_dir / ".lock"):
                for child in self.state_dir.iterdir():
                    if child.name != ".lock":
                        shutil.rmtree(child) if child.is_dir() else child.unlink()
                store = StateStore(self.state_dir, self.limit)
                touched: set[FeedKey] = {ALL}
                count = 0
                for pub in publications:
                    entry, feeds = self._entry(pub, pub.action == "withdraw")
                    at = pub.confirmed_at or datetime.now(UTC)
                    touched.update(store.apply(entry, feeds, at)[1])
                    count += 1
                self._write_feeds(store, sorted(touched))
                store.save()
                self._remove_stale_feeds(touched)
        return count

    def _remove_stale_feeds(self, kept: set[FeedKey]) -> None:
        wanted = {self.site_dir / key.file(fmt) for key in kept for fmt in ("atom", "rss")}
        for path in (self.site_dir / "feeds").rglob("*"):
            if path.suffix in (".atom", ".rss") and path not in wanted:
                path.unlink()

    async def _flush_loop(self) -> None:
        while self._pending:
            await asyncio.sleep(self.window)
            batch, self._pending = self._pending, []
            try:
                flushed = await asyncio.to_thread(self._flush, batch)
            except asyncio.CancelledError:
                for delivery in batch:
                    delivery.future.cancel()
                raise
            except Exception as exc:  # every waiter learns of it; the loop goes on
                flushed = _Flushed([_as_channel_error(exc)] * len(batch), [])
            task = asyncio.create_task(self._settle(batch, flushed))
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)

    async def _settle(self, batch: list[_Delivery], flushed: _Flushed) -> None:
        """Ping the hub for the rewritten feeds, then hand each delivery its outcome."""
        try:
            if self.hub is not None and flushed.topics:
                await self.hub.announce(flushed.topics)
        finally:
            for delivery, outcome in zip(batch, flushed.outcomes, strict=True):
                if delivery.future.done():  # its caller gave up waiting
                    continue
                if isinstance(outcome, datetime):
                    delivery.future.set_result(outcome)
                else:
                    delivery.future.set_exception(outcome)

    def _flush(self, batch: list[_Delivery]) -> _Flushed:
        with map_errors("feeds"):
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with locked(self.state_dir / ".lock"):
                return self._flush_locked(batch)

    def _flush_locked(self, batch: list[_Delivery]) -> _Flushed:
        store = StateStore(self.state_dir, self.limit)
        now = datetime.now(UTC)
        outcomes: list[Outcome | None] = [None] * len(batch)
        shown: list[tuple[FeedKey, ...]] = [()] * len(batch)
        repeats: list[datetime | None] = [None] * len(batch)
        touched: set[FeedKey] = set()
        for i, delivery in enumerate(batch):
            try:
                _preload(store, delivery)
            except PermanentError as exc:
                # Only this delivery: its item or one of its feeds is broken. Said loudly (the
                # log, /readyz), with the way out: the state is regenerated from the database.
                outcomes[i] = exc
                continue
            applied, shown[i] = store.apply(delivery.entry, delivery.feeds, now)
            touched.update(shown[i])
            if applied:
                now += _TICK  # distinct times keep the arrival order within a flush
            else:  # a repeat of what is live (a crash came before its record): its first time
                repeats[i] = store.live_time(delivery.entry)
        topics = self._write_feeds(store, sorted(touched))
        store.save()  # after the feeds: the item records are the commit point
        written = {key: self._read_back(key) for key in touched}
        confirmed_at = datetime.now(UTC)
        for i, delivery in enumerate(batch):
            if outcomes[i] is not None:
                continue
            entry_id = delivery.entry["id"]
            missing = [
                key.url("atom")
                for key in shown[i]
                if entry_id in store.feed(key).entries and not contains(*written[key], entry_id)
            ]  # an entry that aged out of every feed at once was still published
            outcomes[i] = (
                RetryableError(f"feeds: {', '.join(missing)} does not contain {entry_id}")
                if missing
                else repeats[i] or confirmed_at
            )
        return _Flushed([o if o is not None else confirmed_at for o in outcomes], topics)

    def _write_feeds(self, store: StateStore, keys: list[FeedKey]) -> list[str]:
        topics = []
        for key in keys:
            state = store.feed(key)
            state.trim(self.limit)
            title = state.title or _text(feed_title(self.site, key, ""))
            atom, rss = render(self.site, key, title, state.newest(self.limit))
            for fmt, data in (("atom", atom), ("rss", rss)):
                path = self.site_dir / key.file(fmt)
                if _read(path) == data:
                    continue  # unchanged: no rewrite, no ping
                path.parent.mkdir(parents=True, exist_ok=True)
                self.write_feed(path, data)
                topics.append(self.site.feed_url(key, fmt))
        return topics

    def _read_back(self, key: FeedKey) -> tuple[bytes, bytes]:
        atom = _read(self.site_dir / key.file("atom")) or b""
        rss = _read(self.site_dir / key.file("rss")) or b""
        return atom, rss


def _preload(store: StateStore, delivery: _Delivery) -> None:
    # Everything a delivery needs is read before it changes anything, so a broken file fails
    # that delivery alone and leaves no half-applied entry behind.
    old = store.item(delivery.entry["item_id"])
    for key in (*delivery.feeds, *(old.feeds if old else ())):
        store.feed(key)


def _read(path: Path) -> bytes | None:
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes()
    return None


def _as_channel_error(exc: Exception) -> ChannelError:
    if isinstance(exc, ChannelError):
        return exc
    return RetryableError(f"feeds: flush failed: {type(exc).__name__}: {exc}")


def feeds_factory(ctx: ChannelContext) -> FeedsChannel:
    """The feeds channel for `ctx`: `settings["base_url"]` required; `title`, `hub_url`,
    `feeds_window` optional. A bad value is a ValueError (a start-up error)."""
    settings: Any = ctx.settings
    base_url = site_base_url(settings)
    hub = hub_url(settings.get("hub_url"))
    window = float(settings.get("feeds_window", WINDOW))
    if not 0 <= window <= 10:
        raise ValueError(f"settings['feeds_window'] must be 0 to 10 seconds, got {window}")
    site = Site(
        base_url=base_url,
        host=urlsplit(base_url).hostname or "",
        title=str(settings.get("title") or DEFAULT_TITLE),
        hub_url=hub,
    )
    data_dir = Path(ctx.data_dir)
    _remove_old_layout(data_dir / "site" / "feeds")
    return FeedsChannel(
        site,
        data_dir / "site",
        data_dir / "state" / "feeds",
        window=window,
        hub=Hub(hub, ctx.session) if hub and ctx.session is not None else None,
    )


def _remove_old_layout(feeds_dir: Path) -> None:
    """The first feeds kept their state as `site/feeds/all.json` (and its `.lock`), inside the
    public directory, where a plain static server would publish it. State now lives in
    `state/feeds/`; the old files are deleted, not migrated (the feeds are rebuilt as items are
    delivered, and `all.atom` still holds what was published)."""
    for name in ("all.json", ".lock"):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # nothing to remove
            (feeds_dir / name).unlink()
            log.info("removed %s, left by the old feeds layout", feeds_dir / name)


SPEC = ChannelSpec(
    "feeds",
    feeds_factory,
    # Deliveries within a window share one flush: more in flight makes bigger flushes.
    in_flight=32,
    capabilities=frozenset({Capability.REBUILD, Capability.LOCAL_FILES}),
)
