"""The website channel: static HTML pages under `<data_dir>/site/`, the first platform (第一平台).

Target: the local file system. The aiohttp app (or any static server) serves `<data_dir>/site/`
at `settings["base_url"]`; an item's page is `items/{item_id}.html`. The item id is an int, so no
user text ever becomes part of a path.

Limits and quirks:

- A page is live once it is renamed into place: it is written to a temp file in the same
  directory, fsynced, renamed over the old page (`os.replace`, atomic on POSIX) and the directory
  is fsynced. `confirmed_at` is taken after that, so it is the time the page went live.
- Rendering is deterministic: publishing a version twice writes the same bytes (idempotent by
  construction). Each page carries its version in `<meta name="gongkai-version">`; under a lock on
  `items/.lock`, a page is never replaced by an older version (a worker that outlived its lease
  cannot put back a page that a revision or a withdrawal replaced).
- Withdrawal replaces the page, at the same path, with a notice saying when and why.
- Templates are Jinja2 with autoescape on; `body_html` was sanitized at intake and is the only
  value inserted unescaped. They are found next to this package (`templates/site/`, shipped at the
  top level of the wheel) unless `settings["templates_dir"]` names the directory holding them.
- OS errors are mapped by `map_errors`: a full disk, I/O errors and other transient conditions
  are retryable; no permission, a read-only file system or a path that is not a directory are
  permanent; an errno not listed is retryable (the dispatcher's retry limit bounds it). The feeds
  channel shares these file helpers (`map_errors`, `locked`, `write_atomic`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2

from channels.base import ChannelContext, Publication, Receipt
from channels.files import DEFAULT_TITLE, item_path, locked, map_errors, site_base_url, write_atomic

SHANGHAI = ZoneInfo("Asia/Shanghai")
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates" / "site"
VALIDITY = {"valid": "有效", "repealed": "废止", "expired": "失效"}

_VERSION_MARK = re.compile(rb'<meta name="gongkai-version" content="(\d+)"')


@dataclass(frozen=True)
class FieldTable:
    """A rendered part of `fields`: scalars as key/value rows, or one list of rows as columns."""

    caption: str | None
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def field_tables(fields: Mapping[str, Any]) -> list[FieldTable]:
    """Tables for the structured fields: one key/value table, then one per list of row dicts."""
    scalars: list[tuple[str, ...]] = []
    tables: list[FieldTable] = []
    for key, value in fields.items():
        if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
            columns = tuple(dict.fromkeys(k for row in value for k in row))
            rows = tuple(tuple(cell_text(row.get(c)) for c in columns) for row in value)
            tables.append(FieldTable(key, columns, rows))
        else:
            scalars.append((key, cell_text(value)))
    if scalars:
        tables.insert(0, FieldTable(None, ("项目", "内容"), tuple(scalars)))
    return tables


def cell_text(value: Any) -> str:
    """A field value as display text; nested structures fall back to compact JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and not any(isinstance(v, dict | list) for v in value):
        return "；".join(cell_text(v) for v in value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def release_date(pub: Publication) -> date | None:
    """The 发布日期: the approval date of this version, in Asia/Shanghai."""
    if pub.approved_at is None:
        return None
    at = pub.approved_at if pub.approved_at.tzinfo else pub.approved_at.replace(tzinfo=UTC)
    return at.astimezone(SHANGHAI).date()


def _catalogue_rows(pub: Publication) -> list[tuple[str, str]]:
    released = release_date(pub)
    return [
        ("索引号", pub.index_no or ""),
        ("主题分类", f"{pub.domain} / {pub.category}"),
        ("发布机构", pub.agency_name),
        ("成文日期", pub.formed_on.isoformat()),
        ("发布日期", released.isoformat() if released else ""),
        ("文号", pub.document_number or ""),
        ("主题词", "；".join(pub.keywords)),
        ("有效性", VALIDITY.get(pub.validity, pub.validity)),
    ]


class WebsiteChannel:
    """Writes each item's page, and its withdrawal notice, under the site directory."""

    name = "website"

    def __init__(
        self, site_dir: Path, base_url: str, env: jinja2.Environment, site_title: str
    ) -> None:
        self.site_dir = site_dir
        self.base_url = base_url
        self.env = env
        self.site_title = site_title

    async def publish(self, pub: Publication) -> Receipt:
        if pub.action == "withdraw":  # a withdrawal of something never published here
            return await self.withdraw(pub, Receipt())
        context = {
            "meta": _catalogue_rows(pub),
            "summary": pub.summary,
            "body_html": pub.body_html,
            "tables": field_tables(pub.fields),
            "withheld": [
                (w.get("basis_name") or w.get("basis", ""), w.get("field", ""))
                for w in pub.withheld
            ],
            "change_note": pub.change_note,
        }
        return await self._write(pub, "item.html", context)

    async def withdraw(self, pub: Publication, receipt: Receipt) -> Receipt:
        on = pub.changed_on or release_date(pub) or datetime.now(SHANGHAI).date()
        context = {
            "index_no": pub.index_no or "",
            "agency_name": pub.agency_name,
            "reason": pub.change_note or "",
            "withdrawn_on": on.isoformat(),
        }
        return await self._write(pub, "withdrawn.html", context)

    async def _write(self, pub: Publication, template: str, context: dict[str, Any]) -> Receipt:
        relative = item_path(pub.item_id)
        page = {
            **context,
            "title": pub.title,
            "version": pub.version,
            "site_title": self.site_title,
            "root": urlsplit(self.base_url).path.rstrip("/"),
        }
        with map_errors(f"website {relative}"):
            await asyncio.to_thread(self._write_page, relative, template, page, pub.version)
        return Receipt(
            external_id=relative,
            url=f"{self.base_url}/{relative}",
            confirmed_at=datetime.now(UTC),  # after the rename: the page is live
        )

    def _write_page(self, relative: str, template: str, page: dict[str, Any], version: int) -> None:
        data = self.env.get_template(template).render(page).encode("utf-8")
        path = self.site_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with locked(path.parent / ".lock"):
            current = page_version(path)
            if current is not None and current > version:
                return  # a newer version (or its withdrawal) is live; leave it
            write_atomic(path, data)


def page_version(path: Path) -> int | None:
    """The version recorded in an existing page's head, or None if there is no page."""
    try:
        with path.open("rb") as file:
            head = file.read(4096)
    except FileNotFoundError:
        return None
    match = _VERSION_MARK.search(head)
    return int(match[1]) if match else None


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
    """The website channel for `ctx`: `settings["base_url"]` required, `title`, `templates_dir`."""
    templates_dir = Path(ctx.settings.get("templates_dir") or TEMPLATES_DIR)
    for name in ("item.html", "withdrawn.html"):
        if not (templates_dir / name).is_file():
            raise ValueError(f"website templates not found: {templates_dir / name}")
    return WebsiteChannel(
        site_dir=Path(ctx.data_dir) / "site",
        base_url=site_base_url(ctx.settings),
        env=make_environment(templates_dir),
        site_title=str(ctx.settings.get("title") or DEFAULT_TITLE),
    )
