"""An item version as a WeChat article (图文消息), within the draft API's limits.

WeChat shows no stylesheet, only inline styles, drops external images and links, and limits a
draft: title ≤ 32 characters, author ≤ 16, digest ≤ 128, content under 20,000 characters and
1 MB. So a long title is shortened (the full title opens the body), the article carries the
信息索引 metadata, the structured fields and the withheld-part notices the website shows, and a
body over the limits is replaced by the summary and metadata with 阅读原文 to the website.
Body images are uploaded by the channel; `image_sources` finds them and `with_images` puts the
uploaded URLs in their place.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from channels.base import Publication
from channels.site_fields import field_tables, withheld_list

TITLE_MAX = 32
AUTHOR_MAX = 16
DIGEST_MAX = 128
CONTENT_MAX_CHARS = 20_000
CONTENT_MAX_BYTES = 1_000_000

escape = html.escape
_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_SRC = re.compile(r'\bsrc="([^"]*)"', re.IGNORECASE)
_ALT = re.compile(r'\balt="([^"]*)"', re.IGNORECASE)
_CELL = 'style="border:1px solid #ccc;padding:4px 6px;font-size:14px;"'
_TABLE = 'style="border-collapse:collapse;width:100%;margin:8px 0;"'
IMAGE_LEFT_OUT = "〔图片见网站原文〕"


@dataclass(frozen=True)
class Article:
    """What `draft/add` receives for one article."""

    title: str
    author: str
    digest: str
    content: str
    content_source_url: str  # 阅读原文: the item on the website
    complete: bool  # False: the body was too long and only the summary is carried

    def as_draft(self, thumb_media_id: str) -> dict[str, object]:
        return {
            "title": self.title,
            "author": self.author,
            "digest": self.digest,
            "content": self.content,
            "content_source_url": self.content_source_url,
            "thumb_media_id": thumb_media_id,
            "need_open_comment": 0,
            "only_fans_can_comment": 0,
        }


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def image_sources(body_html: str) -> list[str]:
    """The `src` of every image in the body, in order, each once (HTML entities decoded)."""
    found: list[str] = []
    for tag in _IMG.findall(body_html):
        match = _SRC.search(tag)
        if match and (src := html.unescape(match[1])) not in found:
            found.append(src)
    return found


def with_images(body_html: str, uploaded: Mapping[str, str]) -> str:
    """The body with each image's `src` replaced by its uploaded URL; an image that could not
    be uploaded becomes a note pointing to the website."""

    def swap(match: re.Match[str]) -> str:
        tag = match[0]
        src = _SRC.search(tag)
        url = uploaded.get(html.unescape(src[1])) if src else None
        if url is None:
            alt = _ALT.search(tag)
            label = f"〔图片：{alt[1]}，见网站原文〕" if alt and alt[1].strip() else IMAGE_LEFT_OUT
            return f'<span style="color:#888;">{label}</span>'
        return _SRC.sub(f'src="{html.escape(url, quote=True)}"', tag, count=1)

    return _IMG.sub(swap, body_html)


def build_article(
    pub: Publication,
    source_url: str,
    author: str = "",
    body_html: str | None = None,
) -> Article:
    """The article for `pub`; `body_html` is the body with uploaded image URLs (default: the
    publication's, for a body without images)."""
    title = shorten(pub.title, TITLE_MAX)
    if pub.version > 1:
        title = shorten(f"【更正】{pub.title}", TITLE_MAX)
    head = _heading(pub, title)
    meta = _metadata(pub)
    tail = _notices(pub) + _source(source_url)
    body = pub.body_html if body_html is None else body_html
    full = head + meta + _para(pub.summary) + body + _fields(pub) + tail
    complete = _fits(full)
    if not complete:
        note = "正文较长，请点击“阅读原文”在政府网站查看全文及附表。"
        full = head + meta + _para(pub.summary) + _para(note) + tail
    return Article(
        title=title,
        author=shorten(author or pub.agency_name, AUTHOR_MAX),
        digest=shorten(pub.summary, DIGEST_MAX),
        content=full,
        content_source_url=source_url,
        complete=complete,
    )


def _fits(content: str) -> bool:
    return len(content) < CONTENT_MAX_CHARS and len(content.encode()) < CONTENT_MAX_BYTES


def _para(text: str, style: str = "") -> str:
    if not text:
        return ""
    attr = f' style="{style}"' if style else ""
    return f"<p{attr}>{html.escape(text)}</p>"


def _heading(pub: Publication, title: str) -> str:
    """The full title opens the body when the article's title had to be shortened."""
    parts = []
    if title.rstrip("…") != pub.title and not title.endswith(pub.title):
        parts.append(_para(pub.title, "font-size:18px;font-weight:bold;"))
    if pub.version > 1 and pub.change_note:
        parts.append(_para(f"更正说明：{pub.change_note}", "color:#b22;"))
    return "".join(parts)


def _metadata(pub: Publication) -> str:
    """信息索引: what identifies the item in the government's disclosure catalogue."""
    rows: list[tuple[str, str | None]] = [
        ("索引号", pub.index_no),
        ("发布机构", pub.agency_name),
        ("主题分类", pub.label),
        ("文号", pub.document_number),
        ("项目编号", pub.project_code),
        ("行政区划", pub.region),
        ("成文日期", pub.formed_on.isoformat()),
        ("有效性", pub.validity),
    ]
    return _table(None, ("", ""), [(k, v) for k, v in rows if v], header=False)


def _fields(pub: Publication) -> str:
    out = []
    for table in field_tables(pub.fields, pub.field_labels, pub.withheld):
        rows = [tuple(cell.text for cell in row) for row in table.rows]
        out.append(_table(table.caption, table.columns, rows, header=bool(table.caption)))
    return "".join(out)


def _notices(pub: Publication) -> str:
    parts = withheld_list(pub.withheld, pub.field_labels)
    if not parts:
        return ""
    items = "".join(f"<li>{html.escape(w.where)}：依法不予公开（{html.escape(w.basis)}）</li>"
                    for w in parts)  # fmt: skip
    return f'<p style="color:#666;">以下内容依法不予公开：</p><ul style="color:#666;">{items}</ul>'


def _source(url: str) -> str:
    return _para(f"原文链接：{url}", "color:#888;font-size:13px;")


def _table(
    caption: str | None,
    columns: tuple[str, ...],
    rows: Sequence[tuple[str | None, ...]],
    header: bool,
) -> str:
    if not rows:
        return ""
    head = f"<p><strong>{escape(caption)}</strong></p>" if caption else ""
    thead = ""
    if header:
        cells = "".join(f"<th {_CELL}>{escape(c)}</th>" for c in columns)
        thead = f"<thead><tr>{cells}</tr></thead>"
    body = "".join(
        "<tr>" + "".join(f"<td {_CELL}>{escape(c or '')}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"{head}<table {_TABLE}>{thead}<tbody>{body}</tbody></table>"
