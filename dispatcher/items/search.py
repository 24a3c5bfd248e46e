"""The site search: an n-gram inverted index over titles and summaries, on SQLite and PostgreSQL.

Chinese has no spaces between words, so the index is of characters, not words. Text is
normalized (NFKC, lowercase; anything that is not a letter or digit becomes a separator), then:

- a run of CJK characters gives every character (unigram) and every adjacent pair (bigram);
- a run of other letters and digits (`e9901000001234567`, `2026`) gives one whole-word token.

A query is normalized the same way. Whitespace in the query separates terms that must all
match; within a term, each CJK run of two or more characters looks up its bigrams (a lone
character its unigram) and each word its token. A candidate must hold every gram
(`GROUP BY … HAVING count(*) = n`, which the (gram, item, version) primary key makes exact), then
each term must occur as a phrase in the normalized text (`LIKE`), so `医中` does not match
`中心医院` although both characters are there. Words match whole: `2026` finds `2026年`, `202`
does not.

Rows are written when a version is approved (`index_version`, in the approval's transaction) and
never change. Which version a reader sees is decided at query time, as on the website: the newest
version whose `website` publish delivery is `published`, of an item that is not withdrawn; a
scheduled version, or a revision still on its way, is not found until its page is live.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from channels import FIRST_PLATFORM
from dispatcher.rules.grams import index_rows, query_grams, terms_of
from dispatcher.rules.states import ItemStatus
from dispatcher.storage.models import (
    agencies,
    deliveries,
    item_versions,
    items,
    live_on_first_platform,
    search_documents,
    search_grams,
)

MAX_QUERY = 100  # characters of the raw query
PAGE_SIZE = 20
MAX_PAGE = 50  # deeper pages are refused: nobody reads them, crawlers would


async def index_version(
    conn: AsyncConnection, item_id: int, version: int, title: str, summary: str
) -> None:
    """Index an approved version, in the caller's transaction (once per version)."""
    doc, *grams = index_rows(item_id, version, title, summary)
    await conn.execute(search_documents.insert().values(doc))
    if grams:
        await conn.execute(search_grams.insert(), grams)


@dataclass(frozen=True)
class Hit:
    """One result: what the result list shows of an item's public version."""

    item_id: int
    version: int
    title: str
    summary: str
    domain: str
    category: str
    agency_name: str
    published_at: datetime


@dataclass(frozen=True)
class Results:
    """One page of results; `total` counts all pages."""

    terms: tuple[str, ...]
    hits: tuple[Hit, ...]
    total: int
    page: int

    @property
    def pages(self) -> int:
        return min(MAX_PAGE, -(-self.total // PAGE_SIZE))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _matches(terms: tuple[str, ...]) -> sa.Subquery:
    """(item_id, version) of the versions holding every gram of every term."""
    grams = sorted(set().union(*(query_grams(t) for t in terms)))
    return (
        sa.select(search_grams.c.item_id, search_grams.c.version)
        .where(search_grams.c.gram.in_(grams))
        .group_by(search_grams.c.item_id, search_grams.c.version)
        .having(sa.func.count() == len(grams))
        .subquery("matches")
    )


def _live(site: sa.FromClause, m: sa.Subquery) -> list[sa.ColumnElement[bool]]:
    """`site` put the match live on the website, and no newer version is live there."""
    newer = deliveries.alias("newer")
    return [
        live_on_first_platform(site),
        ~sa.exists().where(
            newer.c.item_id == m.c.item_id,
            newer.c.version > m.c.version,
            live_on_first_platform(newer),
        ),
        items.c.status != ItemStatus.WITHDRAWN,
    ]


async def search(conn: AsyncConnection, query: str, page: int = 1) -> Results:
    """Page `page` (1-based) of the public items matching `query`, newest publication first."""
    terms = terms_of(query)
    if not terms:
        return Results(terms, (), 0, page)
    m = _matches(terms)
    docs, iv = search_documents, item_versions
    site = deliveries.alias("site")
    joined = (
        m.join(docs, sa.and_(docs.c.item_id == m.c.item_id, docs.c.version == m.c.version))
        .join(items, items.c.id == m.c.item_id)
        .join(
            site,
            sa.and_(
                site.c.item_id == m.c.item_id,
                site.c.version == m.c.version,
                site.c.channel == FIRST_PLATFORM,
            ),
        )
    )
    where = _live(site, m)
    where += [docs.c.text.like(f"%{_escape_like(t)}%", escape="\\") for t in terms]
    total = (
        await conn.execute(sa.select(sa.func.count()).select_from(joined).where(*where))
    ).scalar_one()
    if total == 0:
        return Results(terms, (), 0, page)
    shown = joined.join(iv, sa.and_(iv.c.item_id == m.c.item_id, iv.c.version == m.c.version)).join(
        agencies, agencies.c.code == items.c.agency_code
    )
    columns = (items.c.id, m.c.version, iv.c.title, iv.c.summary, items.c.domain)
    rows = await conn.execute(
        sa.select(*columns, items.c.category, agencies.c.name, site.c.confirmed_at)
        .select_from(shown)
        .where(*where)
        .order_by(site.c.confirmed_at.desc(), items.c.id.desc())
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    )
    hits = tuple(Hit(*row) for row in rows)
    return Results(terms, hits, int(total), page)
