"""The events an outlet receives: Standard Webhooks payloads `{"type", "timestamp", "data"}`.

`data` is the item version's public representation (what the website shows, nothing withheld):
`docs/media/event.schema.json` is its JSON Schema and `docs/media/guide.md` explains it. Types:
`item.published` (a first version), `item.revised` (a later one), `item.withdrawn`.
"""

from __future__ import annotations

import html
import json
import re
from collections import OrderedDict
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urljoin

import nh3

from channels import paths
from channels.base import Publication
from channels.site_fields import withheld_list, withheld_notice
from channels.site_pages import release_date

SCHEMA_VERSION = 1
_BLOCK_TAG = re.compile(
    r"<(?:/?(?:p|div|li|tr|h[1-6]|table|ul|ol|blockquote|pre)|br|hr)\b[^>]*>", re.IGNORECASE
)
_LINK = re.compile(r'\b(href|src)="([^"]*)"')  # as nh3 writes attributes: double-quoted


def absolute_links(body_html: str, page_url: str) -> str:
    """The body with its relative links and image sources resolved against the item's page, so
    they work on an outlet's site too."""

    def resolve(match: re.Match[str]) -> str:
        target = urljoin(page_url, html.unescape(match[2]))
        return f'{match[1]}="{html.escape(target, quote=True)}"'

    return _LINK.sub(resolve, body_html)


def event_type(pub: Publication) -> str:
    if pub.action == "withdraw":
        return "item.withdrawn"
    return "item.published" if pub.version == 1 else "item.revised"


def plain_text(body_html: str) -> str:
    """The body as plain text: its text, a line per block, entities decoded (nh3 drops every
    tag; a block's tags become line breaks first)."""
    text = html.unescape(nh3.clean(_BLOCK_TAG.sub("\n", body_html), tags=set()))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    at = value if value.tzinfo else value.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def feed_urls(pub: Publication, base_url: str) -> dict[str, str]:
    """The Atom feeds the item is in: the whole site's, its domain's, agency's and region's."""
    return {
        "all": base_url + paths.feed_url(None, None, "atom"),
        "domain": base_url + paths.feed_url("domains", pub.domain, "atom"),
        "agency": base_url + paths.feed_url("agencies", pub.agency_code, "atom"),
        "region": base_url + paths.feed_url("regions", pub.region, "atom"),
    }


def event_data(pub: Publication, base_url: str) -> dict[str, Any]:
    """The public representation of the version `pub`. A withdrawal is a version of its own (the
    next number): its content is the withdrawn item's, its dates and reason its own."""
    withdrawn = pub.action == "withdraw"
    released = release_date(pub)
    page = f"{base_url}/{paths.item_file(pub.item_id)}"
    return {
        "item_id": pub.item_id,
        "version": pub.version,
        "index_no": pub.index_no,
        "withdrawn": withdrawn,
        "domain": {"key": pub.domain, "name": pub.domain_name or pub.domain},
        "category": {"key": pub.category, "name": pub.category_name or pub.category},
        "title": pub.title,
        "summary": pub.summary,
        "body_html": absolute_links(pub.body_html, page),
        "body_text": plain_text(pub.body_html),
        "fields": dict(pub.fields),
        "field_labels": dict(pub.field_labels),
        "withheld": [
            {
                "field": w.get("field", ""),
                "where": part.where,
                "basis": part.basis,
                "notice": withheld_notice(part.basis),
            }
            for w, part in zip(
                pub.withheld, withheld_list(pub.withheld, pub.field_labels), strict=True
            )
        ],
        "agency": {"code": pub.agency_code, "name": pub.agency_name},
        "region": pub.region,
        "project_code": pub.project_code,
        "document_number": pub.document_number,
        "keywords": list(pub.keywords),
        "validity": pub.validity,
        "decision": pub.decision,
        "formed_on": _day(pub.formed_on),
        "changed_on": _day(pub.changed_on),
        "released_on": _day(released),
        "approved_at": _utc(pub.approved_at),
        "change_note": None if withdrawn else pub.change_note,
        "withdrawal_reason": pub.change_note if withdrawn else None,
        "url": page,
        "feeds": feed_urls(pub, base_url),
    }


def event_body(pub: Publication, base_url: str, now: datetime) -> str:
    """The JSON text of the event for `pub` (UTF-8, no ASCII escapes), as signed and sent.

    `data` is the same for every outlet and every retry of a version, so its JSON is made once
    per version in a worker (`_DATA`, a small LRU) and only the envelope is new each time."""
    envelope = {"type": event_type(pub), "timestamp": _utc(now), "schema_version": SCHEMA_VERSION}
    head = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
    return f'{head[:-1]},"data":{_data_json(pub, base_url)}}}'


_DATA: OrderedDict[tuple[Any, ...], str] = OrderedDict()
_DATA_SIZE = 512  # versions kept: a burst to every outlet builds each one once


def _data_json(pub: Publication, base_url: str) -> str:
    # The version, and what could tell two versions of that number apart (another database in
    # the same process, as in the tests): cheap beside building the data.
    key = (pub.item_id, pub.version, pub.action, base_url, pub.approved_at, pub.title,
           pub.summary, pub.body_html, pub.change_note, repr(pub.fields),
           repr(pub.withheld))  # fmt: skip
    found = _DATA.get(key)
    if found is None:
        found = json.dumps(event_data(pub, base_url), ensure_ascii=False, separators=(",", ":"))
        _DATA[key] = found
        if len(_DATA) > _DATA_SIZE:
            _DATA.popitem(last=False)
    else:
        _DATA.move_to_end(key)
    return found
