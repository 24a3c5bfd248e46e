"""`gongkai site rebuild`: regenerate the website from the database (the ledger's source).

Every delivery to the first platform that went live (published, or a withdrawal taken down) is
replayed in the order it went live, through the channel's `rebuild` (`RebuildableChannel`), so
the result is what publishing them one by one would have written. Rows are read in pages of
`BATCH` by keyset, from a worker thread that asks the event loop for the next page: memory stays
flat whatever the archive size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import channels
from channels.base import Publication, RebuildableChannel
from dispatcher.dispatch.channels import build_channel
from dispatcher.dispatch.deliveries import DELIVERY_CONTENT, publication
from dispatcher.errors import ConfigurationError, SettingsError
from dispatcher.rules.catalogue import Catalogue
from dispatcher.rules.states import DeliveryStatus
from dispatcher.settings import Settings
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries

BATCH = 500
CHANNEL = channels.FIRST_PLATFORM


def website(settings: Settings, catalogue: Catalogue) -> RebuildableChannel:
    """The first platform's channel as the worker builds it, able to rebuild."""
    enabled = build_channel(settings, catalogue, channels.REGISTRY, CHANNEL, session=None)
    if enabled.rebuilder is None:
        raise SettingsError(f"channel {CHANNEL!r} cannot rebuild what it holds")
    return enabled.rebuilder


async def _page(db: Database, after: tuple[datetime, int] | None, batch: int) -> list[Any]:
    query = (
        DELIVERY_CONTENT.where(
            deliveries.c.channel == CHANNEL, deliveries.c.status.in_(DeliveryStatus.confirmed())
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
    async with db.connect() as conn:
        return list(await conn.execute(query))


async def rebuild(
    db: Database, settings: Settings, catalogue: Catalogue, batch: int = BATCH
) -> int:
    """Regenerate the site from every live website delivery; returns how many were replayed."""
    channel = website(settings, catalogue)
    loop = asyncio.get_running_loop()

    def publications() -> Iterator[Publication]:
        after: tuple[datetime, int] | None = None
        while True:
            rows = asyncio.run_coroutine_threadsafe(_page(db, after, batch), loop).result()
            for row in rows:
                yield publication(row, catalogue)
            if len(rows) < batch:
                return
            after = (rows[-1].confirmed_at, rows[-1].id)

    try:
        return await asyncio.to_thread(channel.rebuild, publications())
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write the site under {site_path(settings)}: {exc}"
        ) from exc


def site_path(settings: Settings) -> Path:
    return settings.data_path / "site"
