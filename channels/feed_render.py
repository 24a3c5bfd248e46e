"""Atom 1.0 and RSS 2.0 bytes for one feed's entries, written with feedgen.

The bytes depend only on the entries, the feed's title and the site (base URL, hub): the feed's
`updated` is its newest entry's, not the clock, so the same state renders the same bytes and an
unchanged feed is not rewritten. feedgen puts only the first `rel="self"` link into RSS; the
WebSub hub link is added there as `atom:link rel="hub"` by a small feedgen extension.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from channels import paths
from channels.feed_state import Entry, FeedKey

WITHDRAWN_PREFIX = "【已撤回】"
TAG_YEAR = 2026  # part of every tag URI: never change it, or every entry id changes
ATOM_NS = "http://www.w3.org/2005/Atom"
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # `updated` of a feed with no entries
# Characters XML 1.0 cannot carry (lxml refuses them): dropped from user text before storing.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Site:
    """What every feed of one site shares."""

    base_url: str  # no trailing slash
    host: str
    title: str
    hub_url: str = ""  # "" = no WebSub hub

    def entry_id(self, item_id: int) -> str:
        """The item's permanent entry id (a tag URI, RFC 4151)."""
        paths.item_file(item_id)  # rejects anything but a positive int
        return f"tag:{self.host},{TAG_YEAR}:item:{item_id:d}"

    def feed_url(self, key: FeedKey, fmt: str) -> str:
        """The absolute URL of a feed: its self link and the WebSub topic."""
        return self.base_url + key.url(fmt)


def xml_text(text: str | None) -> str:
    """`text` without the control characters XML cannot hold (they would break every render)."""
    return _NOT_XML.sub("", text or "")


def feed_title(site: Site, key: FeedKey, name: str) -> str:
    """The feed's Chinese title; `name` is the domain's or agency's name (the code if none)."""
    if key.kind == "domains":
        return f"{site.title} - {name or key.code}"
    if key.kind == "agencies":
        return name or key.code
    if key.kind == "regions":
        return f"行政区划 {key.code}"
    return site.title


class _HubLink:
    """A feedgen extension adding `<atom:link rel="hub">` to an RSS channel (duck-typed)."""

    href = ""

    def extend_ns(self) -> dict[str, str]:
        return {}

    def extend_atom(self, feed: Any) -> Any:
        return feed

    def extend_rss(self, feed: Any) -> Any:
        channel = feed[0]  # called before the items are appended
        xml_elem(f"{{{ATOM_NS}}}link", channel, href=self.href, rel="hub")
        return feed


def render(site: Site, key: FeedKey, title: str, entries: Sequence[Entry]) -> tuple[bytes, bytes]:
    """The Atom and the RSS document of `entries` (newest first), as bytes."""
    fg = FeedGenerator()
    fg.load_extension("dc", atom=False, rss=True)  # dc:creator: RSS <author> needs an e-mail
    code = quote(key.code, safe="")
    fg.id(f"tag:{site.host},{TAG_YEAR}:feed:" + (f"{key.kind}:{code}" if key.kind else "all"))
    fg.title(title)
    fg.description(title)
    fg.author(name=site.title)
    fg.language("zh-CN")
    fg.generator("gongkai")
    page = site.base_url + (paths.list_url(key.kind, key.code) if key.kind else "/")
    changed = max((datetime.fromisoformat(e["updated"]) for e in entries), default=_EPOCH)
    fg.updated(changed)
    fg.lastBuildDate(changed)
    for entry in entries:
        _add_entry(fg, entry)
    documents = []
    for fmt, mime in (("atom", "application/atom+xml"), ("rss", "application/rss+xml")):
        links = [{"href": site.feed_url(key, fmt), "rel": "self", "type": mime}]
        if site.hub_url:
            links.append({"href": site.hub_url, "rel": "hub"})
        # feedgen takes the last link as RSS <link>: the HTML page goes last.
        links.append({"href": page, "rel": "alternate", "type": "text/html"})
        fg.link(links, replace=True)
        if fmt == "atom":
            documents.append(fg.atom_str(pretty=True))
        else:
            if site.hub_url:
                fg.register_extension("websub", _HubLink, None, atom=False, rss=True)
                fg.websub.href = site.hub_url
            documents.append(fg.rss_str(pretty=True))
    atom, rss = documents
    return bytes(atom), bytes(rss)


def _add_entry(fg: Any, rec: Entry) -> None:
    fe = fg.add_entry(order="append")
    fe.id(rec["id"])
    fe.title((WITHDRAWN_PREFIX if rec["withdrawn"] else "") + rec["title"])
    fe.link(href=rec["url"], rel="alternate", type="text/html")
    fe.published(datetime.fromisoformat(rec["published"]))
    fe.updated(datetime.fromisoformat(rec["updated"]))
    if rec["author"]:
        fe.author(name=rec["author"])
        fe.dc.dc_creator(rec["author"])
    if rec["category"]:
        fe.category(term=rec["category"])
    note = rec["change_note"] or ""
    # The summary is plain text, but RSS readers take <description> as HTML: it goes in escaped
    # as HTML (and Atom says so, type="html"), so markup in it is shown, never run.
    if rec["withdrawn"]:
        fe.summary(html.escape(f"本信息已撤回。{note}"), type="html")
        content = "<p>本信息已撤回。</p>" + (
            f"<p>撤回原因：{html.escape(note)}</p>" if note else ""
        )
    else:
        fe.summary(html.escape(rec["summary"] or rec["title"]), type="html")
        content = f"<p>{html.escape(rec['summary'])}</p>" if rec["summary"] else ""
        content += f"<p>变更说明：{html.escape(note)}</p>" if note else ""
    fe.content(content or f"<p>{html.escape(rec['title'])}</p>", type="html")


def contains(atom: bytes, rss: bytes, entry_id: str) -> bool:
    """Whether both written documents hold the entry (the read-back check)."""
    shown = html.escape(entry_id, quote=False)
    return f"<id>{shown}</id>".encode() in atom and f">{shown}</guid>".encode() in rss
