"""The feeds channel's private state: per-feed windows and per-item records, outside the site.

    <data_dir>/state/feeds/
      .lock                          flock held by a flush (all processes of one machine)
      all.json                       the site-wide feed's newest entries (at most `limit`)
      domains/bidding.json           one file per feed, named like the feed file (paths.py)
      agencies/k<digest>.json        (regions likewise)
      items/{item_id}.json           version, withdrawn, published, updated, feeds it is in

A feed file keeps only the entries its feed shows, so a delivery reads and writes a bounded
amount whatever the number of items ever published. The item record is what recognises a late,
older delivery and keeps `published` after the entry has aged out of every feed. The item
records are written last in a flush: they are the commit point, so a crash half way leaves a
state that the retried delivery applies again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from channels import paths
from channels.base import StateUnreadable
from channels.files import marking_broken, write_atomic

Entry = dict[str, Any]  # one feed entry as stored: see ENTRY_KEYS
ENTRY_KEYS = frozenset(
    {"id", "item_id", "title", "summary", "url", "category", "author", "published", "updated",
     "withdrawn", "change_note", "version"}
)  # fmt: skip
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, order=True)
class FeedKey:
    """One feed: `kind` None is the site-wide feed, else a kind of paths.FEED_KINDS and a code."""

    kind: str = ""
    code: str = ""

    def file(self, fmt: str) -> str:
        """The feed file relative to the site root (paths.feed_file)."""
        return paths.feed_file(self.kind or None, self.code or None, fmt)

    def url(self, fmt: str) -> str:
        """The feed's URL path relative to the base URL (paths.feed_url)."""
        return paths.feed_url(self.kind or None, self.code or None, fmt)

    def state_name(self) -> str:
        """The state file of this feed, relative to the state directory (digested like the feed)."""
        return str(PurePosixPath(self.file("atom")).relative_to("feeds").with_suffix(".json"))


ALL = FeedKey()


@dataclass(frozen=True)
class ItemRecord:
    """What is remembered of an item for as long as the state exists."""

    version: int
    withdrawn: bool
    published: datetime
    updated: datetime
    feeds: tuple[FeedKey, ...]

    def superseded_by(self, version: int, withdrawn: bool) -> bool:
        """A higher version wins; the same version wins only as a withdrawal of a live entry."""
        if version != self.version:
            return version > self.version
        return withdrawn and not self.withdrawn


@dataclass
class FeedState:
    """One feed's newest entries (id -> entry) and its title; `dirty` once changed."""

    key: FeedKey
    title: str = ""
    entries: dict[str, Entry] = field(default_factory=dict)
    dirty: bool = False

    def put(self, entry: Entry, title: str) -> None:
        self.entries[entry["id"]] = entry
        self.title = title
        self.dirty = True

    def remove(self, entry_id: str) -> None:
        if self.entries.pop(entry_id, None) is not None:
            self.dirty = True

    def newest(self, limit: int) -> list[Entry]:
        """The `limit` most recently updated entries, newest first (ties: higher item id)."""
        ranked = sorted(
            self.entries.values(), key=lambda e: (_time(e["updated"]), e["item_id"]), reverse=True
        )
        return ranked[:limit]

    def trim(self, limit: int) -> None:
        """Forget the entries beyond the newest `limit`: they can no longer be shown."""
        if len(self.entries) > limit:
            self.entries = {e["id"]: e for e in self.newest(limit)}
            self.dirty = True


class StateStore:
    """Reads the state files a flush needs once, keeps them in memory, writes the changed ones."""

    def __init__(self, root: Path, limit: int) -> None:
        self.root = root
        self.limit = limit
        self._items: dict[int, ItemRecord | None] = {}
        self._changed_items: set[int] = set()
        self._feeds: dict[FeedKey, FeedState] = {}

    def item(self, item_id: int) -> ItemRecord | None:
        """The item's record, None if never delivered; StateUnreadable (marked) if unreadable."""
        if item_id not in self._items:
            with marking_broken(self.root):
                self._items[item_id] = _load_item(self._item_path(item_id))
        return self._items[item_id]

    def feed(self, key: FeedKey) -> FeedState:
        """The feed's state (empty if new); StateUnreadable (marked) if unreadable."""
        if key not in self._feeds:
            with marking_broken(self.root):
                self._feeds[key] = _load_feed(self.root / key.state_name(), key)
        return self._feeds[key]

    def apply(
        self, entry: Entry, feeds: Mapping[FeedKey, str], now: datetime
    ) -> tuple[bool, tuple[FeedKey, ...]]:
        """Put `entry` (without times) into `feeds` (key -> feed title) if it supersedes.

        Returns whether it did and the feeds to render: the new and the old ones if it did,
        else the feeds the stored version is in (so a stale feed file is repaired).
        """
        item_id: int = entry["item_id"]
        old = self.item(item_id)
        if old is not None and not old.superseded_by(entry["version"], entry["withdrawn"]):
            return False, old.feeds
        updated = now if old is None else max(now, old.updated + _TICK)
        published = now if old is None else old.published
        stored = {**entry, "published": published.isoformat(), "updated": updated.isoformat()}
        for key, title in feeds.items():
            self.feed(key).put(stored, title)
        gone = () if old is None else tuple(k for k in old.feeds if k not in feeds)
        for key in gone:
            self.feed(key).remove(entry["id"])
        self._items[item_id] = ItemRecord(
            entry["version"], entry["withdrawn"], published, updated, tuple(sorted(feeds))
        )
        self._changed_items.add(item_id)
        return True, (*sorted(feeds), *gone)

    def live_time(self, entry: Entry) -> datetime | None:
        """When this very version (and withdrawal) of the entry's item went into the feeds."""
        old = self.item(entry["item_id"])
        if old is None or (old.version, old.withdrawn) != (entry["version"], entry["withdrawn"]):
            return None
        return old.updated

    def save(self) -> None:
        """Write the changed feed windows, then the changed item records (the commit point)."""
        for state in self._feeds.values():
            state.trim(self.limit)
            if state.dirty:
                body: dict[str, Any] = {
                    "kind": state.key.kind,
                    "code": state.key.code,
                    "title": state.title,
                    "entries": state.newest(self.limit),
                }
                self._write(self.root / state.key.state_name(), body)
                state.dirty = False
        for item_id in sorted(self._changed_items):
            record = self._items[item_id]
            if record is None:  # only applied items are marked changed
                continue
            body = {
                "version": record.version,
                "withdrawn": record.withdrawn,
                "published": record.published.isoformat(),
                "updated": record.updated.isoformat(),
                "feeds": [[k.kind, k.code] for k in record.feeds],
            }
            self._write(self._item_path(item_id), body)
        self._changed_items.clear()

    def _item_path(self, item_id: int) -> Path:
        paths.item_file(item_id)  # only a positive int becomes a file name
        return self.root / "items" / f"{item_id:d}.json"

    @staticmethod
    def _write(path: Path, body: Mapping[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(body, ensure_ascii=False, indent=1, sort_keys=True)
        write_atomic(path, text.encode("utf-8"))


def _unreadable(path: Path, exc: Exception, show: Any = str) -> StateUnreadable:
    return StateUnreadable(
        f"feeds state {path} is unreadable: {show(exc)}; `gongkai feeds rebuild` regenerates it"
    )


def _read_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _unreadable(path, exc) from exc


def _load_item(path: Path) -> ItemRecord | None:
    body = _read_json(path)
    if body is None:
        return None
    try:
        if not isinstance(body, dict) or not isinstance(body.get("version"), int):
            raise ValueError("not an item record with an integer version")
        return ItemRecord(
            version=body["version"],
            withdrawn=bool(body["withdrawn"]),
            published=_time(body["published"]),
            updated=_time(body["updated"]),
            feeds=tuple(sorted(_feed_key(k) for k in body["feeds"])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _unreadable(path, exc, repr) from exc


def _load_feed(path: Path, key: FeedKey) -> FeedState:
    body = _read_json(path)
    if body is None:
        return FeedState(key)
    try:
        if not isinstance(body, dict) or not isinstance(body.get("entries"), list):
            raise ValueError("not a feed state with a list of entries")
        if (body.get("kind"), body.get("code")) != (key.kind, key.code):
            raise ValueError(f"holds feed {body.get('kind')!r} {body.get('code')!r}")
        entries = {e["id"]: _checked_entry(e) for e in body["entries"]}
        return FeedState(key, str(body.get("title") or ""), entries)
    except (KeyError, TypeError, ValueError) as exc:
        raise _unreadable(path, exc, repr) from exc


def _checked_entry(entry: Any) -> Entry:
    if not isinstance(entry, dict) or not entry.keys() >= ENTRY_KEYS:
        raise ValueError(f"an entry lacks some of {sorted(ENTRY_KEYS)}")
    if not isinstance(entry["version"], int) or not isinstance(entry["item_id"], int):
        raise ValueError(f"entry {entry['id']!r} has a non-integer version or item id")
    _time(entry["updated"])
    _time(entry["published"])
    return entry


def _feed_key(raw: Iterable[Any]) -> FeedKey:
    kind, code = raw
    key = FeedKey(str(kind), str(code))
    key.file("atom")  # validates the kind and code
    return key


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)
