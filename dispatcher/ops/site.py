"""`gongkai site rebuild`: regenerate the website from the database (the ledger's source).

Every website delivery that went live (published, or a withdrawal taken down) is replayed in the
order it went live, through the channel's `rebuild`, so the result is what publishing them one by
one would have written. Rows are read in pages of `BATCH` by keyset, from a worker thread that
asks the event loop for the next page: memory stays flat whatever the archive size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from channels.base import ChannelContext, Publication
from channels.website import WebsiteChannel, website_factory
from dispatcher.dispatch.deliveries import DELIVERY_CONTENT, publication
from dispatcher.dispatch.worker import channel_settings
from dispatcher.settings import Settings
from dispatcher.storage.models import PUBLISHED, TAKEN_DOWN, deliveries

BATCH = 500
CHANNEL = "website"


def website(settings: Settings) -> WebsiteChannel:
    """The website channel as the worker builds it."""
    ctx = ChannelContext(
        name=CHANNEL,
        settings=channel_settings(settings, CHANNEL),
        session=None,
        data_dir=str(settings.data_path),
    )
    return website_factory(ctx)


async def _page(engine: AsyncEngine, after: tuple[datetime, int] | None, batch: int) -> list[Any]:
    query = (
        DELIVERY_CONTENT.where(
            deliveries.c.channel == CHANNEL,
            sa.or_(
                sa.and_(deliveries.c.action == "publish", deliveries.c.status == PUBLISHED),
                sa.and_(deliveries.c.action == "withdraw", deliveries.c.status == TAKEN_DOWN),
            ),
        )
        .order_by(deliveries.c.confirmed_at, deliveries.c.id)
        .limit(batch)
    )
    if after is not None:  # keyset: compared column by column, so each bind takes its type
        at, last = after
        query = query.where(
            sa.or_(
                deliveries.c.confirmed_at > at,
                sa.and_(deliveries.c.confirmed_at == at, deliveries.c.id > last),
            )
        )
    async with engine.connect() as conn:
        return list(await conn.execute(query))


async def rebuild(engine: AsyncEngine, settings: Settings, batch: int = BATCH) -> int:
    """Regenerate the site from every live website delivery; returns how many were replayed."""
    channel = website(settings)
    loop = asyncio.get_running_loop()

    def publications() -> Iterator[Publication]:
        after: tuple[datetime, int] | None = None
        while True:
            rows = asyncio.run_coroutine_threadsafe(_page(engine, after, batch), loop).result()
            for row in rows:
                yield publication(row)
            if len(rows) < batch:
                return
            after = (rows[-1].confirmed_at, rows[-1].id)

    return await asyncio.to_thread(channel.rebuild, publications())


def site_path(settings: Settings) -> Path:
    return settings.data_path / "site"
