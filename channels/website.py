"""The website channel: the disclosure column as static HTML under `<data_dir>/site/` (第一平台).

Target: the local file system. The aiohttp app (or any static server, see `channels/paths.py`)
serves `<data_dir>/site/` at `settings["base_url"]`. Publishing an item writes its page
(`items/{id}.html`) and the pages it appears on: the home page (the column: latest items, the six
domains, how to subscribe), the newest page of its domain, agency and region lists, those lists'
front pages, and its project page (`/projects/{code}/`: the project's lifecycle in process
order). Lists are numbered from the oldest, so older pages never change and publishing one more
item costs the same whatever the size of the archive (`channels/site_model.py`).

Limits and quirks:

- A page is live once it is renamed into place: written to a temp file in the same directory,
  fsynced, renamed over the old page and the directory fsynced. `confirmed_at` is taken after the
  item page and every list page are in place, so it is the time the item went live.
- All writes of one publication happen under one `flock` (`<data_dir>/state/website/.lock`), so
  worker processes never interleave their updates of a list page. The state (which page holds
  which item, the 变更记录) lives in `<data_dir>/state/website/`, outside the public site.
- An older version never replaces a newer one; a withdrawal replaces the item page, at the same
  path, with a notice saying when and why, and marks the item 【已撤回】 in its lists.
- No user text becomes part of a file path: item ids are ints, codes become digests
  (`channels/paths.py`). Templates are Jinja2 with autoescape on; `body_html` was sanitized at
  intake and is the only value inserted unescaped. They are found next to this package
  (`templates/site/`, shipped at the top level of the wheel) unless `settings["templates_dir"]`
  names another directory.
- A repeated delivery of what is already live (a crash came after the pages went live and before
  the dispatcher recorded it) rewrites the same pages and answers the time it first went live,
  kept in the item's state: the confirmation times stay in the order the lists were appended in, so
  `rebuild` puts every item on the same list page as incremental publishing did.
- `rebuild(publications)` regenerates the whole site from a replay of the delivered versions
  (`gongkai site rebuild`): state in memory, each page written once, one sync at the end.
- OS errors are mapped by `map_errors`: a full disk, I/O errors and other transient conditions
  are retryable; no permission, a read-only file system or a path that is not a directory are
  permanent; an errno not listed is retryable (the dispatcher's retry limit bounds it).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2

from channels import paths, site_footer
from channels.base import (
    SHANGHAI,
    ChannelContext,
    ChannelError,
    PermanentError,
    Publication,
    Receipt,
    RetryableError,
)
from channels.batching import Batcher
from channels.files import DEFAULT_TITLE, locked, map_errors, site_base_url, write_atomic
from channels.registry import Capability, ChannelSpec
from channels.site_model import PAGE_SIZE, SITEMAP, SiteModel, StateStore
from channels.site_pages import Renderer, release_date

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates" / "site"
TEMPLATES = ("base.html", "home.html", "list.html", "item.html", "withdrawn.html", "project.html",
             "sitemap.html")  # fmt: skip
STYLESHEET = "static/site.css"
GROUP_LIMIT = 256  # publications written together at most


class WebsiteChannel:
    """Writes each item's page and the list, project and home pages it appears on."""

    name = "website"

    def __init__(
        self,
        data_dir: Path,
        base_url: str,
        templates_dir: Path,
        site_title: str,
        domains: Sequence[Mapping[str, Any]] = (),
        page_size: int = PAGE_SIZE,
        footer: Mapping[str, Any] | None = None,
    ) -> None:
        self.site_dir = data_dir / "site"
        self.state_dir = data_dir / "state" / "website"
        self.base_url = base_url
        self.templates_dir = templates_dir
        self.env = make_environment(templates_dir)
        self.site_title = site_title
        self.domains = domains
        self.page_size = page_size
        self.footer = site_footer.footer(footer or {})  # what every page carries at its foot
        # Group commit: one write at a time; publications arriving meanwhile go in the next one,
        # which takes the site lock once and writes the pages they share once.
        self._groups: Batcher[tuple[Publication, bool], datetime | ChannelError] = Batcher(
            self._write_group, max_size=GROUP_LIMIT, max_wait=0
        )

    async def publish(self, pub: Publication) -> Receipt:
        return await self._deliver(pub, withdrawn=pub.action == "withdraw")

    async def withdraw(self, pub: Publication, receipt: Receipt) -> Receipt:
        return await self._deliver(pub, withdrawn=True)

    async def _deliver(self, pub: Publication, *, withdrawn: bool) -> Receipt:
        try:
            relative = paths.item_file(pub.item_id)
        except ValueError as exc:
            raise PermanentError(str(exc)) from exc
        live = await self._groups.submit((pub, withdrawn))
        if isinstance(live, ChannelError):
            raise live
        return Receipt(external_id=relative, url=f"{self.base_url}/{relative}", confirmed_at=live)

    async def _write_group(
        self, group: Sequence[tuple[Publication, bool]]
    ) -> list[datetime | ChannelError]:
        try:
            return await asyncio.to_thread(self._apply_group, group)
        except Exception as exc:  # a bug, not the disk: retried, then failed, for a person
            return [RetryableError(f"website: {type(exc).__name__}: {exc}") for _ in group]

    def _apply_group(
        self, group: Sequence[tuple[Publication, bool]]
    ) -> list[datetime | ChannelError]:
        """Apply a group together; if that fails, each alone, so one bad item fails alone."""
        try:
            with map_errors("website"):
                return list(self._apply(group, durable=True))
        except ChannelError as exc:
            if len(group) == 1:
                return [exc]
        outcomes: list[datetime | ChannelError] = []
        for pub, withdrawn in group:
            try:
                with map_errors(f"website {paths.item_file(pub.item_id)}"):
                    outcomes += self._apply([(pub, withdrawn)], durable=True)
            except ChannelError as exc:
                outcomes.append(exc)
        return outcomes

    def _apply(self, pubs: Sequence[tuple[Publication, bool]], durable: bool) -> list[datetime]:
        """Apply (publication, withdrawn) pairs under the site lock; nothing is kept if one fails.

        Returns, for each, the time its pages went live, taken under the lock and one
        microsecond apart in the order applied: confirmation times follow the order the lists
        were appended in, which `rebuild` replays.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with locked(self.state_dir / ".lock"):
            store = StateStore(self.state_dir, durable=durable)
            model = SiteModel(store, self.site_title, self.page_size)
            renderer = self._renderer(durable)
            applied: list[bool] = []
            for pub, withdrawn in pubs:
                released = release_date(pub) or datetime.now(SHANGHAI).date()
                item = model.apply(pub, released.isoformat(), withdrawn)
                if item is not None:
                    renderer.item_page(pub, item)
                applied.append(item is not None)
            renderer.render(model, model.dirty)
            self._write_stylesheet(durable)
            live = datetime.now(UTC)  # every page is in place
            times = [  # a repeat (after a crash before its record) answers its first time
                model.went_live(pub, withdrawn, live + timedelta(microseconds=i))
                if done
                else live  # an older version than what is live: nothing changed
                for i, ((pub, withdrawn), done) in enumerate(zip(pubs, applied, strict=True))
            ]
            store.flush()  # after the pages: a crash re-runs the delivery, which redoes them
        return times

    def rebuild(self, publications: Iterable[Publication]) -> int:
        """Regenerate the site from `publications` (every delivered version, oldest first).

        Replaces the website's state and pages; leaves the feeds (`site/feeds/`) alone. Returns
        the number of publications applied.
        """
        count = 0

        def counted() -> Iterable[Publication]:
            nonlocal count
            for pub in publications:
                count += 1
                yield pub

        self.state_dir.mkdir(parents=True, exist_ok=True)
        with locked(self.state_dir / ".lock"):
            for child in self.state_dir.iterdir():
                if child.name != ".lock":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            for child in self.site_dir.iterdir() if self.site_dir.exists() else ():
                if child.name != "feeds":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            store = StateStore(self.state_dir, durable=False)
            model = SiteModel(store, self.site_title, self.page_size)
            renderer = self._renderer(durable=False)
            for pub in counted():
                released = release_date(pub) or datetime.now(SHANGHAI).date()
                withdrawn = pub.action == "withdraw"
                item = model.apply(pub, released.isoformat(), withdrawn)
                if item is not None:
                    renderer.item_page(pub, item)
                    model.went_live(pub, withdrawn, pub.confirmed_at or datetime.now(UTC))
            model.dirty.update({("index", "all", ""), SITEMAP})
            renderer.render(model, model.dirty)
            self._write_stylesheet(durable=False)
            store.flush()
            os.sync()
        return count

    def _renderer(self, durable: bool) -> Renderer:
        return Renderer(
            self.site_dir, self.base_url, self.env, self.site_title, self.domains, durable,
            self.footer,
        )  # fmt: skip

    def _write_stylesheet(self, durable: bool) -> None:
        source = (self.templates_dir / STYLESHEET).read_bytes()
        target = self.site_dir / STYLESHEET
        try:
            if target.read_bytes() == source:
                return
        except FileNotFoundError:
            target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, source, durable=durable)


def make_environment(templates_dir: Path) -> jinja2.Environment:
    """The Jinja2 environment for the public pages (autoescape on, undefined names fail)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def website_factory(ctx: ChannelContext) -> WebsiteChannel:
    """The website channel for `ctx`: `settings["base_url"]` required; `title`,
    `templates_dir`, `domains` (the catalogue's domains with their categories), `page_size`
    optional."""
    templates_dir = Path(ctx.settings.get("templates_dir") or TEMPLATES_DIR)
    for name in (*TEMPLATES, STYLESHEET):
        if not (templates_dir / name).is_file():
            raise ValueError(f"website templates not found: {templates_dir / name}")
    return WebsiteChannel(
        data_dir=Path(ctx.data_dir),
        base_url=site_base_url(ctx.settings),
        templates_dir=templates_dir,
        site_title=str(ctx.settings.get("title") or DEFAULT_TITLE),
        domains=tuple(ctx.settings.get("outline") or ()),
        page_size=int(ctx.settings.get("page_size") or PAGE_SIZE),
        footer=ctx.settings.get("footer") or {},
    )


SPEC = ChannelSpec(
    "website",
    website_factory,
    # Concurrent deliveries are written together: more in flight makes bigger groups.
    in_flight=32,
    capabilities=frozenset({Capability.REBUILD, Capability.LOCAL_FILES}),
)
