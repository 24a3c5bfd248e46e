"""Rendering the website's pages from a publication and the site state (`site_model`).

Each page kind has one function that builds its template context; `Renderer.render` writes the
pages a `SiteModel` marked dirty. Links are root-relative (`{root}/domains/bidding/`), `root` being
the path of the base URL, so the same files work behind any host name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date
from pathlib import Path
from typing import Any

import jinja2

from channels import paths
from channels.base import SHANGHAI, Publication
from channels.files import write_atomic
from channels.site_fields import field_tables, withheld_list
from channels.site_footer import footer
from channels.site_model import ALL, DIRECTORY_KINDS, SITEMAP_FILE, Page, SiteModel, memberships

VALIDITY = {"valid": "有效", "repealed": "废止", "expired": "失效"}
HOME_ENTRIES = 20
KIND_NAMES = {"domains": "领域", "agencies": "发布机构", "regions": "行政区划"}


def release_date(pub: Publication) -> date | None:
    """The 发布日期: the approval date of this version, in Asia/Shanghai."""
    if pub.approved_at is None:
        return None
    at = pub.approved_at if pub.approved_at.tzinfo else pub.approved_at.replace(tzinfo=UTC)
    return at.astimezone(SHANGHAI).date()


def catalogue_rows(pub: Publication, first_date: str) -> list[tuple[str, str]]:
    """The metadata table of a government disclosure catalogue entry (信息索引)."""
    return [
        ("索引号", pub.index_no or ""),
        ("主题分类", pub.label),
        ("发布机构", pub.agency_name),
        ("成文日期", pub.formed_on.isoformat()),
        ("发布日期", first_date),
        ("文号", pub.document_number or ""),
        ("主题词", "；".join(pub.keywords)),
        ("有效性", VALIDITY.get(pub.validity, pub.validity)),
    ]


def list_href(kind: str, code: str, page: int | None = None) -> str:
    """A list's URL path: its index, or page `page` (numbered from the oldest)."""
    base = "/" if kind == ALL else paths.list_url(kind, code)
    if page is None:
        return base
    return f"/all/page-{page}.html" if kind == ALL else f"{base}page-{page}.html"


def list_file(kind: str, code: str, page: int | None = None) -> str:
    """The file behind `list_href(kind, code, page)`, relative to the site root."""
    if kind == ALL:
        return "index.html" if page is None else f"all/page-{page}.html"
    folder = paths.list_dir(kind, code)
    return f"{folder}/index.html" if page is None else f"{folder}/page-{page}.html"


def feed_links(*lists: tuple[str, str], both: bool = False) -> list[dict[str, str]]:
    """Autodiscovery links for the feeds of `lists` ((kind, code); kind ALL: the whole site)."""
    found = []
    for kind, code in lists:
        for fmt in ("atom", "rss") if both else ("atom",):
            key = None if kind == ALL else kind
            found.append(
                {
                    "href": paths.feed_url(key, code or None, fmt),
                    "type": f"application/{fmt}+xml",
                    "title": f"{'全部信息' if kind == ALL else KIND_NAMES[kind]}（{fmt.upper()}）",
                }
            )
    return found


@dataclass
class Renderer:
    """Writes pages under the site directory from the model's state."""

    site_dir: Path
    base_url: str
    env: jinja2.Environment
    site_title: str
    domains: Sequence[Mapping[str, Any]]  # the catalogue's domains: key, name, categories
    durable: bool = True
    footer: Mapping[str, Any] = field(default_factory=lambda: footer({}))  # what pages carry

    @property
    def root(self) -> str:
        return paths.root_path(self.base_url)

    def write(self, relative: str, template: str, context: dict[str, Any]) -> None:
        page = {"root": self.root, "site_title": self.site_title, "footer": self.footer,
                **context}  # fmt: skip
        data = self.env.get_template(template).render(page).encode("utf-8")
        path = self.site_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, durable=self.durable)

    def render(self, model: SiteModel, pages: Iterable[Page]) -> None:
        """Write every page in `pages` except item pages (written with their publication)."""
        for page in sorted(pages):
            if page[0] == "list":
                self.list_page(model, page[1], page[2], int(page[3]))
            elif page[0] == "index":
                self.index_page(model, page[1], page[2])
            elif page[0] == "project":
                self.project_page(model, page[1])
            elif page[0] == "sitemap":
                self.sitemap_page(model)

    def item_page(self, pub: Publication, item: Mapping[str, Any]) -> None:
        entry = item["entry"]
        context: dict[str, Any] = {
            "title": pub.title,
            "version": pub.version,
            "feeds": feed_links(*[(k, c) for k, c in memberships(pub).items()]),
            "crumbs": [(pub.domain_name or pub.domain, list_href("domains", pub.domain))],
            "meta": catalogue_rows(pub, entry["date"]),
            "history": item["history"],
            "agency": (pub.agency_name, list_href("agencies", pub.agency_code)),
            "region": (f"行政区划 {pub.region}", list_href("regions", pub.region)),
            "project": (
                (pub.project_code, paths.list_url("projects", pub.project_code))
                if pub.project_code
                else None
            ),
        }
        if item["withdrawn"]:
            released = release_date(pub)
            on = pub.changed_on or released
            context.update(reason=pub.change_note or "", withdrawn_on=on.isoformat() if on else "")
            template = "withdrawn.html"
        else:
            context.update(
                summary=pub.summary,
                body_html=pub.body_html,
                tables=field_tables(pub.fields, pub.field_labels, pub.withheld),
                withheld=withheld_list(pub.withheld, pub.field_labels),
            )
            template = "item.html"
        self.write(paths.item_file(pub.item_id), template, context)

    def list_page(self, model: SiteModel, kind: str, code: str, n: int) -> None:
        meta = model.meta(kind, code) or {"count": 0, "name": self.site_title}
        pages = (int(meta["count"]) - 1) // model.page_size + 1
        context = {
            "title": f"{meta['name']} 第{n}页",
            "heading": meta["name"],
            "kind": KIND_NAMES.get(kind),
            "entries": model.page(kind, code, n),
            "feeds": feed_links((kind, code), both=True),
            "crumbs": [(meta["name"], list_href(kind, code))],
            "page": n,
            "newer": list_href(kind, code, n + 1) if n < pages else None,
            "older": list_href(kind, code, n - 1) if n > 1 else None,
            "latest": list_href(kind, code),
        }
        self.write(list_file(kind, code, n), "list.html", context)

    def index_page(self, model: SiteModel, kind: str, code: str) -> None:
        entries, pages = model.newest(kind, code, HOME_ENTRIES)
        meta = model.meta(kind, code) or {"count": 0, "name": self.site_title}
        shown_pages = -(-len(entries) // model.page_size)  # newest pages covered by `entries`
        archive = list_href(kind, code, pages - 1) if pages > 1 else None
        if kind == ALL:
            self._home(model, entries, archive, pages, shown_pages)
            return
        context = {
            "title": meta["name"],
            "heading": meta["name"],
            "kind": KIND_NAMES.get(kind),
            "entries": entries,
            "count": meta["count"],
            "feeds": feed_links((kind, code), both=True),
            "crumbs": [],
            "page": None,
            "newer": None,
            "older": archive,
            "latest": None,
        }
        self.write(list_file(kind, code), "list.html", context)

    def _home(
        self,
        model: SiteModel,
        entries: list[dict[str, Any]],
        archive: str | None,
        pages: int,
        shown: int,
    ) -> None:
        domains = []
        for d in self.domains:
            meta = model.meta("domains", d["key"])
            domains.append(
                {
                    "name": d["name"],
                    "href": list_href("domains", d["key"]),
                    "count": meta["count"] if meta else 0,
                    "atom": paths.feed_url("domains", d["key"], "atom"),
                    "rss": paths.feed_url("domains", d["key"], "rss"),
                }
            )
        context = {
            "title": "信息公开专栏",
            "entries": entries,
            "domains": domains,
            "older": archive,
            "feeds": feed_links((ALL, ""), both=True),
        }
        self.write("index.html", "home.html", context)

    def project_page(self, model: SiteModel, code: str) -> None:
        project = model.store.get(f"projects/{paths.stem('projects', code)}")
        if project is None:
            return
        by_category: dict[str, list[dict[str, Any]]] = {}
        for e in sorted(project["entries"], key=lambda e: (e["stage"], e["date"], e["id"])):
            by_category.setdefault(e["category"], []).append(e)
        domain = next((d for d in self.domains if d["key"] == project.get("domain")), None)
        steps = [
            {"name": cat["name"], "entries": by_category.pop(cat["name"], [])}
            for cat in (domain["categories"] if domain else ())
        ]
        steps += [{"name": name, "entries": found} for name, found in by_category.items()]
        context = {
            "title": f"项目 {code}",
            "code": code,
            "domain_name": project.get("domain_name", ""),
            "steps": steps,
            "crumbs": [(project.get("domain_name", ""), list_href("domains", project["domain"]))]
            if project.get("domain")
            else [],
            "feeds": feed_links((ALL, ""), ("domains", project["domain"]))
            if project.get("domain")
            else feed_links((ALL, "")),
        }
        self.write(f"{paths.list_dir('projects', code)}/index.html", "project.html", context)

    def sitemap_page(self, model: SiteModel) -> None:
        """网站地图: the columns (domains and their categories), every agency's and region's
        list, the feeds, and search."""
        directory = model.directory()
        domains = [
            {"name": d["name"], "href": list_href("domains", d["key"]),
             "categories": [c["name"] for c in d.get("categories", ())],
             "atom": paths.feed_url("domains", d["key"], "atom")}
            for d in self.domains
        ]  # fmt: skip
        lists = [
            {"kind": kind, "heading": KIND_NAMES[kind],
             "entries": [{"name": name, "href": list_href(kind, code),
                          "atom": paths.feed_url(kind, code, "atom")}
                         for code, name in sorted(directory.get(kind, {}).items(),
                                                  key=lambda pair: (pair[1], pair[0]))]}
            for kind in DIRECTORY_KINDS
        ]  # fmt: skip
        context = {
            "title": "网站地图",
            "domains": domains,
            "lists": lists,
            "feeds": feed_links((ALL, ""), both=True),
            "crumbs": [],
        }
        self.write(SITEMAP_FILE, "sitemap.html", context)
