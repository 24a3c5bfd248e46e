"""The public site: the website and feeds channels' files, served with conditional GET.

Each URL is mapped to its file by `channels.paths`, the same functions the channels write with, so
no part of a URL is ever used as a path. Files are served by aiohttp's `FileResponse`: ETag and
Last-Modified, 304 for `If-None-Match`/`If-Modified-Since`, ranges, HEAD. `Cache-Control: no-cache`
makes browsers and feed readers revalidate each time (cheap: a 304), so an update shows at once.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from channels import paths
from channels.site_model import SITEMAP_FILE
from channels.site_pages import list_file
from dispatcher.http import site_files, site_templates
from dispatcher.http.deps import DEPS

KINDS = "|".join(paths.KINDS)
FEED_KINDS = "|".join(paths.FEED_KINDS)
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
}


SITE_FILES = web.AppKey("site_files", site_files.SiteFiles)


def site_dir(request: web.Request) -> Path:
    return request.app[DEPS].settings.data_path / "site"


# The public pages load nothing but the site's own stylesheet and images: no script, no frame,
# no remote image (a body's tracking pixel is not fetched by the reader's browser).
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'self'"
)
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "strict-origin-when-cross-origin"}  # fmt: skip


def not_found(request: web.Request) -> web.Response:
    """页面不存在, in the site's layout (its footer included)."""
    html = site_templates.render(request.app, "not_found.html", {"title": "页面不存在"})
    return web.Response(
        status=404, text=html, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS
    )


def serve(request: web.Request, relative: str) -> web.StreamResponse:
    """The file at `relative` (made by `channels.paths` only) or a Chinese 404 page: from
    memory (`site_files`), or from disk for ranges and big files."""
    path = site_dir(request) / relative
    headers = {"Cache-Control": "no-cache", **PAGE_HEADERS}
    content_type = CONTENT_TYPES.get(path.suffix)
    if content_type:
        headers["Content-Type"] = content_type
    found = None if content_type is None or site_files.delegated(request) else (
        request.app[SITE_FILES].get(path))  # fmt: skip
    if isinstance(found, site_files.SiteFile):
        return site_files.respond(request, found, headers)
    if found is None and not path.is_file():
        return not_found(request)
    return web.FileResponse(path, headers=headers)


async def home(request: web.Request) -> web.StreamResponse:
    return serve(request, "index.html")


async def sitemap(request: web.Request) -> web.StreamResponse:
    return serve(request, SITEMAP_FILE)


async def stylesheet(request: web.Request) -> web.StreamResponse:
    return serve(request, "static/site.css")


async def item(request: web.Request) -> web.StreamResponse:
    item_id = int(request.match_info["id"])
    if item_id <= 0:
        return not_found(request)
    return serve(request, paths.item_file(item_id))


async def all_page(request: web.Request) -> web.StreamResponse:
    return serve(request, list_file("all", "", int(request.match_info["n"])))


async def list_index(request: web.Request) -> web.StreamResponse:
    return _list(request, None)


async def list_page(request: web.Request) -> web.StreamResponse:
    return _list(request, int(request.match_info["n"]))


def _list(request: web.Request, page: int | None) -> web.StreamResponse:
    kind, code = request.match_info["kind"], request.match_info["code"]
    try:
        if kind == "projects":
            relative = f"{paths.list_dir(kind, code)}/index.html" if page is None else ""
        else:
            relative = list_file(kind, code, page)
    except ValueError:
        return not_found(request)
    return serve(request, relative) if relative else not_found(request)


async def site_feed(request: web.Request) -> web.StreamResponse:
    return serve(request, paths.feed_file(None, None, request.match_info["fmt"]))


async def list_feed(request: web.Request) -> web.StreamResponse:
    code, dot, fmt = request.match_info["name"].rpartition(".")
    try:
        relative = paths.feed_file(request.match_info["kind"], code, fmt) if dot else ""
    except ValueError:
        return not_found(request)
    return serve(request, relative) if relative else not_found(request)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", home)
    app[SITE_FILES] = site_files.SiteFiles()
    app.router.add_get("/static/site.css", stylesheet)
    app.router.add_get("/" + SITEMAP_FILE, sitemap)
    app.router.add_get(r"/items/{id:\d{1,12}}.html", item)
    app.router.add_get(r"/all/page-{n:\d{1,9}}.html", all_page)
    app.router.add_get(r"/feeds/all.{fmt:atom|rss}", site_feed)
    app.router.add_get(f"/feeds/{{kind:{FEED_KINDS}}}/{{name:[^/]+}}", list_feed)
    app.router.add_get(f"/{{kind:{KINDS}}}/{{code:[^/]+}}/", list_index)
    app.router.add_get(f"/{{kind:{KINDS}}}/{{code:[^/]+}}/page-{{n:\\d{{1,9}}}}.html", list_page)
