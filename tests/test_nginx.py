"""nginx in front (`gongkai site nginx-conf --standalone`): Debian's nginx with the generated
configuration over a published site answers every kind of page and feed, the missing ones and
the app's own paths exactly as the app does: status, body, content type, the headers the site
sends, and conditional GET (each with its own validators). Skipped where nginx or its njs
module is not installed (`.ci/run` installs both)."""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

import aiohttp
import pytest
from multidict import CIMultiDict
from yarl import URL

from channels import paths
from channels.files import write_atomic
from dispatcher.ops import nginx
from dispatcher.settings import Settings
from tests.helpers import CENTER, Client, free_port, wait_until
from tests.test_site import PROJECT
from tests.test_site import published as published  # the fixture

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
needs_nginx = pytest.mark.skipif(
    not (os.path.exists(NGINX) and os.path.exists(nginx.NJS_MODULE)),
    reason="Debian's nginx and its njs module (libnginx-mod-http-js) are not installed",
)
SAME_HEADERS = ("Content-Type", "Cache-Control", "Content-Security-Policy",
                "X-Content-Type-Options", "Referrer-Policy", "Last-Modified")  # fmt: skip
CRAWL_LIMIT = 200  # pages followed from the home page (bounded)


@contextlib.contextmanager
def running_nginx(conf: Path, prefix: Path, port: int) -> Iterator[str]:
    process = subprocess.Popen(  # noqa: S603 - our nginx, our configuration
        [NGINX, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            _, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate(timeout=10)
        assert b"[emerg]" not in err and b"[error]" not in err, err.decode(errors="replace")


@pytest.fixture
async def front(
    api: Client,
    published: dict[str, int],
    dispatch_settings: Settings,
    tmp_path: Path,
) -> AsyncIterator[tuple[str, str]]:
    """(the app's base URL, nginx's) over the published site."""
    port = free_port()
    site = nginx.NginxSite(
        site_dir=dispatch_settings.data_path / "site", app=f"127.0.0.1:{api.server.port}",
        listen=f"127.0.0.1:{port}", user="root" if os.geteuid() == 0 else None,
    )  # fmt: skip
    conf, _ = nginx.write(site, tmp_path / "nginx", whole=True)
    with running_nginx(conf, tmp_path / "nginx", port) as base:
        async with aiohttp.ClientSession() as http:

            async def answers() -> bool:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(base + "/healthz") as r:
                        return r.status == 200
                return False

            await wait_until(answers, 15)
        yield str(api.make_url("")).rstrip("/"), base


async def _get(
    http: aiohttp.ClientSession, url: str, **headers: str
) -> tuple[int, CIMultiDict[str], bytes]:
    raw = URL(url, encoded=True)  # the path as written: no client-side normalising
    async with http.get(raw, headers=headers, allow_redirects=False) as r:
        return r.status, CIMultiDict(r.headers), await r.read()


def _links(body: bytes, path: str) -> set[str]:
    found = set()
    for href in re.findall(rb'href="([^"#?]+)"', body):
        url = urljoin(path, href.decode())
        if not urlsplit(url).netloc:
            found.add(url)
    return found


async def _site_paths(http: aiohttp.ClientSession, base: str) -> list[str]:
    """Every page and feed the site links to, from the home page (bounded)."""
    seen, todo = set(), ["/"]
    while todo and len(seen) < CRAWL_LIMIT:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        status, headers, body = await _get(http, base + path)
        if status == 200 and headers.get("Content-Type", "").startswith("text/html"):
            todo += sorted(_links(body, path) - seen)
    return sorted(seen)


EDGES = [
    "/items/999999.html", "/items/0.html", "/items/0000001.html", "/domains/nonexistent/",
    "/domains/Bad-Key/", "/agencies/NOPE/",
    "/projects/nope/page-1.html", f"/projects/{PROJECT}/page-2.html", "/feeds/domains/x.txt",
    "/feeds/domains/bidding.xml", "/feeds/agencies/NOPE.atom", "/all/page-99.html",
    "/all/page-2.html", "/static/other.css", "/nothing", "/items/", "/search?q=中标候选人",
    "/search?q=另一项目", "/healthz", "/api/v1/items", f"/agencies/{CENTER}/page-1.html",
]  # fmt: skip


@needs_nginx
async def test_nginx_answers_as_the_app_does(front: tuple[str, str]) -> None:
    app, edge = front
    async with aiohttp.ClientSession() as http:
        site = await _site_paths(http, app)
        kinds = {p.split("/")[1] for p in site if p.count("/") > 1}
        assert {"items", "domains", "agencies", "regions", "projects", "feeds"} <= kinds, site
        feeds = [paths.feed_url(k, c, f) for k, c in (("domains", "bidding"), ("agencies", CENTER),
                 ("regions", "990101")) for f in ("atom", "rss")]  # fmt: skip
        checked = 0
        for path in sorted({*site, *feeds, "/feeds/all.atom", "/feeds/all.rss", *EDGES}):
            a_status, a_headers, a_body = await _get(http, app + path)
            n_status, n_headers, n_body = await _get(http, edge + path)
            assert (n_status, n_body) == (a_status, a_body), path
            if a_status != 200 or path.startswith(("/api/", "/search", "/healthz")):
                continue
            for name in SAME_HEADERS:
                assert n_headers.get(name) == a_headers.get(name), (path, name)
            for base, headers in ((app, a_headers), (edge, n_headers)):
                again = await _get(http, base + path, **{"If-None-Match": headers["ETag"]})
                since = await _get(
                    http, base + path, **{"If-Modified-Since": headers["Last-Modified"]}
                )
                assert (again[0], again[2], since[0]) == (304, b"", 304), (base, path)
            checked += 1
        assert checked >= 12


@needs_nginx
@pytest.mark.parametrize(
    "path",
    [
        "/domains/..%2F..%2Fetc/",
        "/agencies/%2E%2E/",
        "/items/..%2F..%2Fpasswd",
        "/%2E%2E/%2E%2E/etc/passwd",
    ],
)
async def test_dot_segments_never_leave_the_site(front: tuple[str, str], path: str) -> None:
    """Encoded dot segments: the app finds no page (404); nginx removes them as RFC 3986 says
    and answers what the resulting path is (the app's answer for it), or refuses a path that
    climbs above the root (400). No file outside the site is ever served."""
    app, edge = front
    decoded = unquote(path)
    normal = posixpath.normpath(decoded) + ("/" if decoded.endswith("/") else "")
    async with aiohttp.ClientSession() as http:
        assert (await _get(http, app + path))[0] == 404
        status, _, body = await _get(http, edge + path)
        if status != 400:
            assert not normal.startswith("/..") and normal.startswith("/")
            expected = await _get(http, app + quote(normal.replace("//", "/")))
            assert (status, body) == (expected[0], expected[2]), path


@needs_nginx
async def test_nginx_compresses_pages_and_feeds(front: tuple[str, str]) -> None:
    _, edge = front
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for path in ("/", "/feeds/all.atom", "/static/site.css"):
            async with http.get(edge + path, headers={"Accept-Encoding": "gzip"}) as r:
                assert r.status == 200 and r.headers.get("Content-Encoding") == "gzip", path
                assert "Accept-Encoding" in r.headers.get("Vary", "")


def test_the_generated_files(tmp_path: Path) -> None:
    site = nginx.NginxSite(site_dir=tmp_path / "site", app="127.0.0.1:8080", listen="8081")
    conf, js = nginx.write(site, tmp_path / "out", whole=False)
    text = conf.read_text(encoding="utf-8")
    assert f"js_import gongkai from {js.resolve()};" in text and "load_module" not in text
    assert "location ^~ /api/" in text and "location = /metrics" in text
    assert f"var DIGEST = {paths.DIGEST_HEX};" in js.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="host:port"):
        nginx.NginxSite(site_dir=tmp_path, app="app; evil", listen="80").check()
    with pytest.raises(ValueError, match="split on"):
        nginx.NginxSite(site_dir=tmp_path / "a b", app="h:1", listen="80").check()


def test_a_page_rewritten_within_its_second_gets_new_validators(tmp_path: Path) -> None:
    """nginx's ETag and Last-Modified count whole seconds: every write moves the file's time
    to a whole second after the one before, so no reader keeps a stale page on a 304."""
    page = tmp_path / "index.html"
    stamps = []
    for n in range(3):
        write_atomic(page, f"<p>{n}</p>".encode())  # the same size each time
        stamps.append(page.stat().st_mtime_ns)
    assert all(stamp % 1_000_000_000 == 0 for stamp in stamps)
    assert stamps[0] < stamps[1] < stamps[2]
