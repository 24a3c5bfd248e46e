"""`gongkai site rebuild` and `gongkai feeds rebuild`: regenerate the website or the feeds from
the database (the ledger's source).

Every delivery to the channel that went live (published, or a withdrawal taken down) is
replayed in the order it went live, with that time, through the channel's `rebuild`
(`RebuildableChannel`), so the result is what publishing them one by one would have written.
Rows are read in pages of `BATCH` by keyset, from a worker thread that asks the event loop for
the next page: memory stays flat whatever the archive size.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import channels
from channels.base import ChannelError, Publication, RebuildableChannel
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


def rebuilder(settings: Settings, catalogue: Catalogue, name: str) -> RebuildableChannel:
    """The channel `name` as the worker builds it, able to rebuild."""
    enabled = build_channel(settings, catalogue, channels.REGISTRY, name, session=None)
    if enabled.rebuilder is None:
        raise SettingsError(f"channel {name!r} cannot rebuild what it holds")
    return enabled.rebuilder


def _live(name: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        deliveries.c.channel == name, deliveries.c.status.in_(DeliveryStatus.confirmed())
    )


async def count(db: Database, name: str = CHANNEL) -> int:
    """How many deliveries `rebuild` would replay for channel `name` (for its progress)."""
    async with db.connect() as conn:
        query = sa.select(sa.func.count()).select_from(deliveries).where(_live(name))
        return int((await conn.execute(query)).scalar_one())


async def _page(
    db: Database, name: str, after: tuple[datetime, int] | None, batch: int
) -> list[Any]:
    query = (
        DELIVERY_CONTENT.where(_live(name))
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
    db: Database,
    settings: Settings,
    catalogue: Catalogue,
    batch: int = BATCH,
    name: str = CHANNEL,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Regenerate channel `name` (the website) from its every live delivery; returns how many
    were replayed. `on_progress`, if given, is called with 1 as each publication has been
    replayed, from the replaying thread."""
    channel = rebuilder(settings, catalogue, name)
    loop = asyncio.get_running_loop()

    def publications() -> Iterator[Publication]:
        after: tuple[datetime, int] | None = None
        while True:
            rows = asyncio.run_coroutine_threadsafe(_page(db, name, after, batch), loop).result()
            for row in rows:
                yield dataclasses.replace(
                    publication(row, catalogue), confirmed_at=row.confirmed_at
                )
                if on_progress is not None:  # the channel asks for the next: this one is done
                    on_progress(1)
            if len(rows) < batch:
                return
            after = (rows[-1].confirmed_at, rows[-1].id)

    try:
        return await asyncio.to_thread(channel.rebuild, publications())
    except (OSError, ChannelError) as exc:  # the feeds map their OSError to a ChannelError
        raise ConfigurationError(
            f"cannot write the site under {site_path(settings)}: {exc}"
        ) from exc


def site_path(settings: Settings) -> Path:
    return settings.data_path / "site"
