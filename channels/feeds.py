"""The feeds channel: Atom 1.0 and RSS 2.0 files of the newest entries, written with feedgen.

Target: local files `<data_dir>/site/feeds/all.atom` and `all.rss`, served with the website at
`settings["base_url"]`. A feed delivery is confirmed when a written feed contains its entry: after
writing, both files are read back and must hold the entry id.

Limits and quirks:

- One entry per item, not per version: id `tag:{host of base_url},2026:item:{item_id}`, link
  `{base_url}/items/{item_id}.html`. A higher version replaces the entry (same id, new `updated`,
  its change note in the content); a version that is not newer than the stored one changes
  nothing (a late, older delivery never overwrites). A withdrawal keeps the entry, titled
  【已撤回】 with the reason, so subscribers learn of it.
- The feeds hold the newest 50 entries by `updated`. `published` is when the entry first entered
  the feed and `updated` when its current version did (strictly increasing per entry): feed time,
  not approval time, so a scheduled release or a late retry still shows at the top.
- The state is `all.json` (entry id -> title, summary, url, published, updated, withdrawn,
  change_note, version), holding every item ever delivered so an older version is recognised
  whenever it arrives; both feeds are regenerated from it on every delivery, which also repairs
  feeds left stale by a crash. No database: this module imports nothing from `dispatcher/`.
- Several worker processes share the directory: the read-modify-write runs under an exclusive
  `flock` on `feeds/.lock`, and every file is replaced atomically (temp file, fsync, rename).
- Errors map as on the website (`channels.website.map_errors`); an unreadable state file is
  permanent (a person must repair or remove it; removing it loses only version history).
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from feedgen.feed import FeedGenerator

from channels.base import ChannelContext, PermanentError, Publication, Receipt, RetryableError
from channels.files import DEFAULT_TITLE, item_path, locked, map_errors, site_base_url, write_atomic

FEED_LIMIT = 50
WITHDRAWN_PREFIX = "【已撤回】"
TAG_YEAR = 2026  # part of every tag URI: never change it, or every entry id changes

State = dict[str, dict[str, Any]]
_RECORD_KEYS = frozenset(
    {"title", "summary", "url", "published", "updated", "withdrawn", "change_note", "version"}
)


class FeedsChannel:
    """Keeps the site-wide Atom and RSS feeds: one entry per item, newest first."""

    name = "feeds"

    def __init__(self, feeds_dir: Path, base_url: str, title: str, limit: int = FEED_LIMIT) -> None:
        self.dir = feeds_dir
        self.base_url = base_url
        self.title = title
        self.limit = limit
        self.host = urlsplit(base_url).hostname or ""
        self.atom_url = f"{base_url}/feeds/all.atom"
        self.rss_url = f"{base_url}/feeds/all.rss"

    def entry_id(self, item_id: int) -> str:
        """The item's permanent entry id (a tag URI, RFC 4151)."""
        item_path(item_id)  # rejects anything but a positive int
        return f"tag:{self.host},{TAG_YEAR}:item:{item_id:d}"

    async def publish(self, pub: Publication) -> Receipt:
        return await self._deliver(pub, withdrawn=pub.action == "withdraw")

    async def withdraw(self, pub: Publication, receipt: Receipt) -> Receipt:
        return await self._deliver(pub, withdrawn=True)

    async def _deliver(self, pub: Publication, *, withdrawn: bool) -> Receipt:
        entry_id = self.entry_id(pub.item_id)
        record = {
            "title": pub.title,
            "summary": pub.summary,
            "url": f"{self.base_url}/{item_path(pub.item_id)}",
            "withdrawn": withdrawn,
            "change_note": pub.change_note,
            "version": pub.version,
        }
        with map_errors(f"feeds {entry_id}"):
            await asyncio.to_thread(self._update, entry_id, record)
        return Receipt(external_id=entry_id, url=self.atom_url, confirmed_at=datetime.now(UTC))

    def _update(self, entry_id: str, record: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        state_path = self.dir / "all.json"
        with locked(self.dir / ".lock"):
            state = load_state(state_path)
            if apply(state, entry_id, record, datetime.now(UTC)):
                text = json.dumps(state, ensure_ascii=False, indent=1, sort_keys=True)
                write_atomic(state_path, text.encode("utf-8"))
            window = newest(state, self.limit)
            atom, rss = self._render(window)
            write_atomic(self.dir / "all.atom", atom)
            write_atomic(self.dir / "all.rss", rss)
            if any(eid == entry_id for eid, _ in window):
                self._check(entry_id)
            # else: the entry aged out of the newest 50 long ago and this is a late,
            # older delivery; the state holds it and the newer version was confirmed.

    def _render(self, window: list[tuple[str, Mapping[str, Any]]]) -> tuple[bytes, bytes]:
        fg = FeedGenerator()
        fg.id(f"tag:{self.host},{TAG_YEAR}:feed:all")
        fg.title(self.title)
        fg.description(self.title)
        fg.author(name=self.title)
        fg.language("zh-CN")
        fg.generator("gongkai")
        # feedgen takes the last link as RSS <link> and the first "self" link as atom:link.
        fg.link(href=self.atom_url, rel="self", type="application/atom+xml")
        fg.link(href=f"{self.base_url}/", rel="alternate", type="text/html")
        # Derived from the entries, not the clock, so the same state gives the same bytes.
        changed = max(
            (_time(r["updated"]) for _, r in window), default=datetime(2026, 1, 1, tzinfo=UTC)
        )
        fg.updated(changed)
        fg.lastBuildDate(changed)
        for entry_id, rec in window:
            _add_entry(fg, entry_id, rec)
        atom: bytes = fg.atom_str(pretty=True)
        fg.link(
            [
                {"href": self.rss_url, "rel": "self", "type": "application/rss+xml"},
                {"href": f"{self.base_url}/", "rel": "alternate", "type": "text/html"},
            ],
            replace=True,
        )
        rss: bytes = fg.rss_str(pretty=True)
        return atom, rss

    def _check(self, entry_id: str) -> None:
        shown = html.escape(entry_id, quote=False)
        atom = (self.dir / "all.atom").read_bytes()
        rss = (self.dir / "all.rss").read_bytes()
        if f"<id>{shown}</id>".encode() not in atom or f">{shown}</guid>".encode() not in rss:
            raise RetryableError(f"feeds: written feed does not contain {entry_id}")


def _add_entry(fg: Any, entry_id: str, rec: Mapping[str, Any]) -> None:
    fe = fg.add_entry(order="append")
    fe.id(entry_id)
    fe.title((WITHDRAWN_PREFIX if rec["withdrawn"] else "") + rec["title"])
    fe.link(href=rec["url"], rel="alternate", type="text/html")
    fe.published(_time(rec["published"]))
    fe.updated(_time(rec["updated"]))
    note = rec.get("change_note") or ""
    if rec["withdrawn"]:
        fe.summary(f"本信息已撤回。{note}")
        content = "<p>本信息已撤回。</p>" + (
            f"<p>撤回原因：{html.escape(note)}</p>" if note else ""
        )
    else:
        fe.summary(rec["summary"] or rec["title"])
        content = f"<p>{html.escape(rec['summary'])}</p>" if rec["summary"] else ""
        content += f"<p>变更说明：{html.escape(note)}</p>" if note else ""
    fe.content(content or f"<p>{html.escape(rec['title'])}</p>", type="html")


def apply(state: State, entry_id: str, record: dict[str, Any], now: datetime) -> bool:
    """Put `record` into `state` if it is newer than the stored entry; True if state changed."""
    old = state.get(entry_id)
    if old is not None and not _supersedes(record, old):
        return False
    updated = now
    if old is not None:
        updated = max(now, _time(old["updated"]) + timedelta(microseconds=1))
    published = old["published"] if old is not None else now.isoformat()
    state[entry_id] = {**record, "published": published, "updated": updated.isoformat()}
    return True


def _supersedes(record: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    if record["version"] != old["version"]:
        return bool(record["version"] > old["version"])
    return bool(record["withdrawn"] and not old["withdrawn"])  # same version, now withdrawn


def newest(state: State, limit: int) -> list[tuple[str, Mapping[str, Any]]]:
    """The `limit` most recently updated entries, newest first (ties by entry id)."""
    ranked = sorted(state.items(), key=lambda kv: (_time(kv[1]["updated"]), kv[0]), reverse=True)
    return list(ranked[:limit])


def load_state(path: Path) -> State:
    """The stored entries; {} if there is no state yet, PermanentError if it is unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        state = json.loads(raw)
        if not isinstance(state, dict):
            raise ValueError("not an object")
        for entry_id, rec in state.items():
            if not isinstance(rec, dict) or not rec.keys() >= _RECORD_KEYS:
                raise ValueError(f"entry {entry_id!r} lacks {sorted(_RECORD_KEYS)}")
            if not isinstance(rec["version"], int):
                raise ValueError(f"entry {entry_id!r} has a non-integer version")
            _time(rec["updated"])
            _time(rec["published"])
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise PermanentError(f"feeds state {path} is unreadable: {exc}") from exc
    return state


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def feeds_factory(ctx: ChannelContext) -> FeedsChannel:
    """The feeds channel for `ctx`: `settings["base_url"]` required, `title` optional."""
    return FeedsChannel(
        feeds_dir=Path(ctx.data_dir) / "site" / "feeds",
        base_url=site_base_url(ctx.settings),
        title=str(ctx.settings.get("title") or DEFAULT_TITLE),
    )
