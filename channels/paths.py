"""Where the public site keeps each page and feed, and the URL it is read at.

No user text ever becomes part of a file path: an agency, region or project code is turned into
a fixed-length digest (`k` + 20 hex digits) for its file name; a domain key comes from the
catalogue and is checked against a strict pattern. URLs carry the code itself (percent-encoded):
the web app maps each URL back to its file with these same functions, so the two never drift.

    /                              site/index.html
    /sitemap.html                  site/sitemap.html                    (网站地图)
    /domains/bidding/              site/domains/bidding/index.html      (page-3.html: page 3)
    /agencies/{code}/              site/agencies/k<digest>/index.html
    /regions/{code}/               site/regions/k<digest>/index.html
    /projects/{code}/              site/projects/k<digest>/index.html
    /items/{id}.html               site/items/{id}.html
    /feeds/all.atom                site/feeds/all.atom                  (.rss likewise)
    /feeds/domains/bidding.atom    site/feeds/domains/bidding.atom
    /feeds/agencies/{code}.atom    site/feeds/agencies/k<digest>.atom   (regions likewise)
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote, urlsplit

LIST_KINDS = ("domains", "agencies", "regions")  # the lists every item appears in
KINDS = (*LIST_KINDS, "projects")
FEED_KINDS = LIST_KINDS
FEED_FORMATS = ("atom", "rss")
DOMAIN_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
_DOMAIN_KEY = re.compile(DOMAIN_KEY_PATTERN)
DIGEST_HEX = 20  # hex digits of a code's SHA-256 in its file name


def stem(kind: str, code: str) -> str:
    """The file-system name for `code` of `kind`: the domain key itself, else a digest."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    if not isinstance(code, str) or not code:
        raise ValueError(f"{kind} code must be a non-empty string")
    if kind == "domains":
        if not _DOMAIN_KEY.match(code):
            raise ValueError(f"not a domain key: {code!r}")
        return code
    return "k" + hashlib.sha256(code.encode("utf-8")).hexdigest()[:DIGEST_HEX]


def list_dir(kind: str, code: str) -> str:
    """The directory of a list (or project) page, relative to the site root."""
    return f"{kind}/{stem(kind, code)}"


def list_url(kind: str, code: str) -> str:
    """The path a reader opens for a list or project page (relative to the base URL)."""
    stem(kind, code)  # same validation as the file side
    return f"/{kind}/{quote(code, safe='')}/"


def feed_file(kind: str | None, code: str | None, fmt: str) -> str:
    """The feed file, relative to the site root; `kind=None` is the site-wide feed."""
    if fmt not in FEED_FORMATS:
        raise ValueError(f"unknown feed format {fmt!r}")
    if kind is None:
        return f"feeds/all.{fmt}"
    if kind not in FEED_KINDS or code is None:
        raise ValueError(f"no feeds for {kind!r}")
    return f"feeds/{kind}/{stem(kind, code)}.{fmt}"


def feed_url(kind: str | None, code: str | None, fmt: str) -> str:
    """The path a feed reader subscribes to (relative to the base URL)."""
    feed_file(kind, code, fmt)
    if kind is None:
        return f"/feeds/all.{fmt}"
    return f"/feeds/{kind}/{quote(code or '', safe='')}.{fmt}"


def item_file(item_id: int) -> str:
    """An item's page, relative to the site root (also its URL path without the slash)."""
    if isinstance(item_id, bool) or not isinstance(item_id, int) or item_id <= 0:
        raise ValueError(f"item id must be a positive int, got {item_id!r}")
    return f"items/{item_id:d}.html"


def root_path(base_url: str) -> str:
    """The path part of the base URL without its trailing slash: every page link starts with it
    (`""` for a site at the root of its host)."""
    return urlsplit(base_url).path.rstrip("/")
