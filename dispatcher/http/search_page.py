"""The public search page: GET /search?q=…&page=… renders `templates/site/search.html`.

The page is dynamic (it is the only public page not written by the website channel), so it is
sent with `Cache-Control: no-cache`. Bad input — a query over 100 characters, a page number that
is not 1 to 50 — gets the same page with a message in Chinese and status 400.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from channels import paths
from channels.base import SHANGHAI
from channels.site_pages import feed_links
from dispatcher.http import site_templates
from dispatcher.http.deps import DEPS
from dispatcher.http.public import PAGE_HEADERS
from dispatcher.items import search
from dispatcher.rules.catalogue import Catalogue

SUMMARY_CHARS = 160


def _page(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or len(text) > 3:
        return None
    page = int(text)
    return page if 1 <= page <= search.MAX_PAGE else None


def _shorten(text: str) -> str:
    return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS] + "…"


def _date(at: datetime) -> str:
    return at.astimezone(SHANGHAI).date().isoformat()


def _hit(root: str, catalogue: Catalogue, hit: search.Hit) -> dict[str, str]:
    labels = catalogue.labels(hit.domain, hit.category)
    topic = f"{labels['domain_name'] or hit.domain} / {labels['category_name'] or hit.category}"
    return {
        "url": f"{root}/items/{hit.item_id:d}.html",
        "title": hit.title,
        "topic": topic,
        "agency": hit.agency_name,
        "date": _date(hit.published_at),
        "summary": _shorten(hit.summary),
    }


def _link(root: str, query: str, page: int) -> str:
    return f"{root}/search?{urlencode({'q': query, 'page': page})}"


async def search_page(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    root = paths.root_path(deps.settings.site.base_url)
    query = request.query.get("q", "").strip()
    page = _page(request.query.get("page", "1").strip() or "1")
    error = None
    if len(query) > search.MAX_QUERY:
        error = f"关键词过长：请不超过{search.MAX_QUERY}个字符。"
    elif page is None:
        error = f"页码无效：请使用 1 至 {search.MAX_PAGE} 之间的页码。"
    context: dict[str, Any] = {
        "title": "搜索",
        "query": query if error is None else "",
        "error": error,
        "searched": False,
        "feeds": feed_links(("all", ""), both=True),  # autodiscovery, as on every page
    }
    if error is None and query and page is not None:
        async with deps.db.connect() as conn:
            results = await search.search(conn, query, page)
        context.update(
            title=f"{query} - 搜索",
            searched=True,
            total=results.total,
            page=page,
            first=(page - 1) * search.PAGE_SIZE + 1,
            pages=results.pages,
            hits=[_hit(root, deps.rules.catalogue, hit) for hit in results.hits],
            prev_url=_link(root, query, page - 1) if page > 1 else None,
            next_url=_link(root, query, page + 1) if page < results.pages else None,
        )
    html = site_templates.render(request.app, "search.html", context)
    return web.Response(
        status=400 if error else 200,
        text=html,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-cache", **PAGE_HEADERS},
    )


def add_routes(app: web.Application) -> None:
    """GET /search."""
    app.router.add_get("/search", search_page)
