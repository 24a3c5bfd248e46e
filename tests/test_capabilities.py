"""What a channel declares it can do, end to end through a real worker: save each remote step
before the next (a retry resumes), confirm a receipt that pends, and what happens without."""

from __future__ import annotations

import json

import sqlalchemy as sa

from channels.registry import Capability
from dispatcher.settings import Settings
from dispatcher.storage import ledger
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries, events
from tests.fakes import Script, scripted_registry
from tests.helpers import Client, TokenFactory, all_in, approve_via_api, running_worker, wait_until


async def _row(db: Database, channel: str) -> sa.Row[tuple[object, ...]]:
    async with db.connect() as conn:
        query = sa.select(deliveries).where(deliveries.c.channel == channel)
        return (await conn.execute(query)).one()


async def test_a_multi_step_channel_resumes_from_the_steps_it_saved(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> None:
    # The remote fails after two steps succeeded (an image upload, a draft): the retry must
    # find both ids and not do them again.
    steps = ({"media_id": "m-1"}, {"draft_id": "d-1"})
    scripts = {"website": Script(save=steps, retryable=1), "feeds": Script()}
    registry = scripted_registry(scripts, frozenset({Capability.STEPS}))
    item_id = await approve_via_api(api, make_token)
    async with running_worker(dispatch_settings, registry):
        await wait_until(all_in(db, "published"))
    assert scripts["website"].steps_seen == [{}, {"media_id": "m-1", "draft_id": "d-1"}]
    row = await _row(db, "website")
    assert (row.attempts, row.steps) == (2, {"media_id": "m-1", "draft_id": "d-1"})
    async with db.connect() as conn:
        saved = await conn.execute(
            sa.select(events.c.data).where(
                events.c.kind == "delivery.steps_saved", events.c.item_id == item_id
            )
        )
        keys = [json.loads(data)["steps"] for data in saved.scalars()]
        assert (await ledger.verify(conn)).ok
    assert keys == [["media_id"], ["draft_id", "media_id"]]  # each save, before the next call


async def test_a_pending_receipt_is_confirmed_by_the_channel(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> None:
    scripts = {"website": Script(pending=1), "feeds": Script()}
    registry = scripted_registry(scripts, frozenset({Capability.CONFIRM}))
    item_id = await approve_via_api(api, make_token)
    async with running_worker(dispatch_settings, registry):
        await wait_until(all_in(db, "published"))
    key = f"{item_id}:1:website"
    assert scripts["website"].calls == [("publish", key), ("confirm", key)]
    row = await _row(db, "website")
    assert row.confirmed_at is not None and row.steps == {"submitted": True}
    async with db.connect() as conn:
        kinds = await conn.execute(
            sa.select(events.c.kind).where(events.c.delivery_id == row.id).order_by(events.c.seq)
        )
        assert list(kinds.scalars()) == [
            "delivery.created",
            "delivery.confirming",
            "delivery.published",
        ]


async def test_a_pending_receipt_from_a_channel_that_cannot_confirm_fails_visibly(
    api: Client, make_token: TokenFactory, db: Database, dispatch_settings: Settings
) -> None:
    scripts = {"website": Script(pending=1), "feeds": Script()}
    await approve_via_api(api, make_token)
    async with running_worker(dispatch_settings, scripted_registry(scripts)):
        await wait_until(all_in(db, "published", "failed"))
    row = await _row(db, "website")
    assert row.status == "failed"
    assert "sent a pending receipt it cannot confirm" in row.last_error
    assert len(scripts["website"].calls) == 1
