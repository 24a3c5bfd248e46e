"""The website's own state: which list pages and project page each item sits on.

The website channel keeps small JSON files under `<data_dir>/state/website/` (outside the public
site): one per item, one per list page, one per list, one per project. Publishing one item reads
and writes a fixed number of them, whatever the size of the archive:

    items/{id}.json                  version, withdrawn, its list entry, slots, 变更记录,
                                     when each version went live
    lists/all/meta.json              {"count": N, "name": …, "code": …}
    lists/all/page-{n}.json          the entries of page n, oldest first (page 1: the oldest)
    lists/{kind}/{stem}/…            the same for each domain, agency and region
    projects/{stem}.json             one project's entries, whatever their stage

Lists are numbered from the oldest, so a new item only ever lands on the last page: older pages
never change, except where an item already on them is revised or withdrawn. `apply` returns the
pages to render ("dirty"); rendering is in `channels/site_pages.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from channels import paths
from channels.base import Publication, StateUnreadable
from channels.files import marking_broken, write_atomic

PAGE_SIZE = 20
ALL = "all"  # the site-wide list, shown on the home page
# ("item", id), ("list", kind, code, n), ("index", kind, code) or ("project", code)
Page = tuple[str, ...]
HOME: Page = ("index", ALL, "")
SITEMAP: Page = ("sitemap",)
SITEMAP_FILE = "sitemap.html"
DIRECTORY_KINDS = ("agencies", "regions")  # the lists the site map names one by one


class StateStore:
    """JSON files by key ("items/7"), read once, written back by `flush` (atomically)."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = root
        self.durable = durable
        self._cache: dict[str, Any] = {}
        self._dirty: set[str] = set()

    def get(self, key: str) -> Any:
        if key not in self._cache:
            path = self.root / f"{key}.json"
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                self._cache[key] = None
            else:
                with marking_broken(self.root):
                    self._cache[key] = _parse(raw, path)
        return self._cache[key]

    def put(self, key: str, value: Any) -> None:
        self._cache[key] = value
        self._dirty.add(key)

    def flush(self) -> None:
        for key in sorted(self._dirty):
            path = self.root / f"{key}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            data = json.dumps(self._cache[key], ensure_ascii=False, sort_keys=True)
            write_atomic(path, data.encode("utf-8"), durable=self.durable)
        self._dirty.clear()


def _parse(raw: bytes, path: Path) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise StateUnreadable(
            f"website state {path} is unreadable: {exc}; `gongkai site rebuild` regenerates it"
        ) from exc


def list_key(kind: str, code: str) -> str:
    return "lists/all" if kind == ALL else f"lists/{paths.list_dir(kind, code)}"


def project_key(code: str) -> str:
    return f"projects/{paths.stem('projects', code)}"


def memberships(pub: Publication) -> dict[str, str]:
    """The lists an item appears in: kind -> code."""
    return {ALL: "", "domains": pub.domain, "agencies": pub.agency_code, "regions": pub.region}


def list_name(kind: str, pub: Publication, site_title: str) -> str:
    """A list's heading in Chinese."""
    if kind == "domains":
        return pub.domain_name or pub.domain
    if kind == "agencies":
        return pub.agency_name
    if kind == "regions":
        return f"行政区划 {pub.region}"
    return site_title


def entry_of(pub: Publication, first_date: str, withdrawn: bool) -> dict[str, Any]:
    """How an item shows in a list or on its project page."""
    return {
        "id": pub.item_id,
        "title": pub.title,
        "date": first_date,
        "category": pub.category_name or pub.category,
        "agency": pub.agency_name,
        "stage": pub.stage,
        "withdrawn": withdrawn,
    }


@dataclass
class SiteModel:
    """Applies one publication to the state; collects the pages that must be re-rendered."""

    store: StateStore
    site_title: str
    page_size: int = PAGE_SIZE
    dirty: set[Page] = field(default_factory=set)

    def current(self, item_id: int) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.store.get(f"items/{item_id:d}")
        return found

    def apply(self, pub: Publication, released: str, withdrawn: bool) -> dict[str, Any] | None:
        """Record `pub`; returns the item's new state, or None if a newer one is already live.

        `released` is the 发布日期 of this version (YYYY-MM-DD).
        """
        item = self.current(pub.item_id)
        if item is not None and not _newer(pub.version, withdrawn, item):
            return None
        first = item["entry"]["date"] if item else released
        entry = entry_of(pub, first, withdrawn)
        history = list(item["history"]) if item else []
        if not history or history[-1]["version"] != pub.version:
            note = pub.change_note or ("" if history else "首次发布")
            history.append({"version": pub.version, "date": released, "note": note})
        if withdrawn:
            history[-1] = {**history[-1], "withdrawn": True}
        slots = dict(item["slots"]) if item else {}
        lists = dict(item["lists"]) if item else {}
        for kind, code in memberships(pub).items():
            if kind in slots and lists.get(kind) == code:
                self._replace(kind, code, slots[kind], entry)
            else:
                if kind in slots:  # a revision moved it (e.g. a new region): leave the old list
                    self._remove(kind, lists[kind], slots[kind], pub.item_id)
                slots[kind] = self._append(kind, code, entry, pub)
                lists[kind] = code
        project = item.get("project") if item else None
        if project and project != pub.project_code:
            self._project_remove(project, pub.item_id)
        if pub.project_code:
            self._project_put(pub.project_code, entry, pub)
        state = {
            "version": pub.version,
            "withdrawn": withdrawn,
            "entry": entry,
            "slots": slots,
            "lists": lists,
            "project": pub.project_code,
            "history": history,
            "live": dict(item.get("live", {})) if item else {},
        }
        self.store.put(f"items/{pub.item_id:d}", state)
        self.dirty.add(("item", str(pub.item_id)))
        return state

    def went_live(self, pub: Publication, withdrawn: bool, at: datetime) -> datetime:
        """Record that this (version, withdrawn) of an applied item went live at `at`, unless it
        already had (a repeat, after a crash before the dispatcher's record): returns the first
        time, which is the one the lists were appended in order of."""
        key = f"items/{pub.item_id:d}"
        state = self.store.get(key)
        first = state.get("live", {}).get(_live_key(pub.version, withdrawn))
        if first is not None:
            return datetime.fromisoformat(first)
        live = {**state.get("live", {}), _live_key(pub.version, withdrawn): at.isoformat()}
        self.store.put(key, {**state, "live": live})
        return at

    def _append(self, kind: str, code: str, entry: dict[str, Any], pub: Publication) -> int:
        key = list_key(kind, code)
        meta = self.store.get(f"{key}/meta") or {"count": 0, "code": code}
        count = int(meta["count"]) + 1
        page = (count - 1) // self.page_size + 1
        entries = list(self.store.get(f"{key}/page-{page}") or [])
        entries.append(entry)
        self.store.put(f"{key}/page-{page}", entries)
        name = list_name(kind, pub, self.site_title)
        self.store.put(f"{key}/meta", {**meta, "count": count, "name": name})
        if kind in DIRECTORY_KINDS and meta.get("name") != name:
            self._name_in_directory(kind, code, name)
        self.dirty.update({("list", kind, code, str(page)), ("index", kind, code), HOME})
        if page > 1 and (count - 1) % self.page_size == 0:
            self.dirty.add(("list", kind, code, str(page - 1)))  # gains its link to the newer page
        return page

    def _name_in_directory(self, kind: str, code: str, name: str) -> None:
        """A new agency or region list (or its new name), for the site map."""
        directory = self.directory()
        directory[kind] = {**directory.get(kind, {}), code: name}
        self.store.put("directory", directory)
        self.dirty.add(SITEMAP)

    def directory(self) -> dict[str, dict[str, str]]:
        """kind -> {code: name} of every agency and region list."""
        found: dict[str, dict[str, str]] = self.store.get("directory") or {}
        return dict(found)

    def _replace(self, kind: str, code: str, page: int, entry: dict[str, Any]) -> None:
        key = f"{list_key(kind, code)}/page-{page}"
        entries = [entry if e["id"] == entry["id"] else e for e in self.store.get(key) or []]
        self.store.put(key, entries)
        self.dirty.update({("list", kind, code, str(page)), ("index", kind, code), HOME})

    def _remove(self, kind: str, code: str, page: int, item_id: int) -> None:
        key = f"{list_key(kind, code)}/page-{page}"
        self.store.put(key, [e for e in self.store.get(key) or [] if e["id"] != item_id])
        self.dirty.update({("list", kind, code, str(page)), ("index", kind, code), HOME})

    def _project_put(self, code: str, entry: dict[str, Any], pub: Publication) -> None:
        key = project_key(code)
        project = self.store.get(key) or {"code": code, "entries": []}
        others = [e for e in project["entries"] if e["id"] != entry["id"]]
        domain = {"domain": pub.domain, "domain_name": pub.domain_name or pub.domain}
        self.store.put(key, {**project, **domain, "entries": [*others, entry]})
        self.dirty.add(("project", code))

    def _project_remove(self, code: str, item_id: int) -> None:
        key = project_key(code)
        project = self.store.get(key)
        if project is not None:
            entries = [e for e in project["entries"] if e["id"] != item_id]
            self.store.put(key, {**project, "entries": entries})
            self.dirty.add(("project", code))

    def newest(self, kind: str, code: str, limit: int) -> tuple[list[dict[str, Any]], int]:
        """The newest `limit` entries of a list, newest first, and its number of pages."""
        key = list_key(kind, code)
        meta = self.store.get(f"{key}/meta")
        if meta is None:
            return [], 0
        pages = (int(meta["count"]) - 1) // self.page_size + 1
        shown: list[dict[str, Any]] = []
        page = pages
        while page >= 1 and len(shown) < limit:
            shown.extend(reversed(self.store.get(f"{key}/page-{page}") or []))
            page -= 1
        return shown[:limit], pages

    def page(self, kind: str, code: str, n: int) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.store.get(f"{list_key(kind, code)}/page-{n}") or []
        return entries[::-1]

    def meta(self, kind: str, code: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.store.get(f"{list_key(kind, code)}/meta")
        return found


def _live_key(version: int, withdrawn: bool) -> str:
    return f"{version:d}{'w' if withdrawn else ''}"


def _newer(version: int, withdrawn: bool, item: dict[str, Any]) -> bool:
    """Does (version, withdrawn) replace what is live? Same version: only a withdrawal does."""
    if version != item["version"]:
        return version > int(item["version"])
    return withdrawn or not item["withdrawn"]  # a repeat of the same publication: idempotent
