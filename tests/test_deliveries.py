"""Claims and outcomes in batches, straight against SQL: leases, guards and ledger events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from channels.base import Receipt
from dispatcher.dispatch.deliveries import Claim, Later, claim_many, settle_and_claim, settle_many
from dispatcher.dispatch.outcomes import failure_outcome, receipt_outcome
from dispatcher.http.app import build_rules
from dispatcher.items import workflow
from dispatcher.items.accounts import Actor
from dispatcher.settings import Settings
from dispatcher.storage import ledger
from dispatcher.storage.db import transaction
from dispatcher.storage.models import FAILED, PUBLISHED, SENDING, deliveries, events
from tests.conftest import CENTER, bid_candidates

EDITOR = Actor(CENTER, "editor", "编辑")
APPROVER = Actor(CENTER, "approver", "审核")


async def approved_deliveries(engine: AsyncEngine, settings: Settings, count: int) -> list[int]:
    """`count` approved items on the website and feeds; their delivery ids, in order."""
    rules = build_rules(settings)
    for n in range(count):
        item = bid_candidates(project_code=f"E99010000000{n:05d}", channels=["website", "feeds"])
        item_id, _ = await workflow.submit(engine, rules, EDITOR, item)
        await workflow.approve(engine, APPROVER, item_id)
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(deliveries.c.id).order_by(deliveries.c.id))
        return [r.id for r in rows]


async def rows(engine: AsyncEngine) -> dict[int, tuple[str, int]]:
    async with engine.connect() as conn:
        found = await conn.execute(sa.select(deliveries.c.id, deliveries.c.status,
                                             deliveries.c.attempts))  # fmt: skip
        return {r.id: (r.status, r.attempts) for r in found}


async def outcome_events(engine: AsyncEngine) -> list[tuple[int, str, int]]:
    """(delivery id, kind, attempt) of the ledger's events about attempts."""
    async with engine.connect() as conn:
        found = await conn.execute(
            sa.select(events.c.delivery_id, events.c.kind, events.c.data).order_by(events.c.seq)
        )
        data = [(r.delivery_id, r.kind, json.loads(r.data)) for r in found]
        return [(d, kind, fields["attempt"]) for d, kind, fields in data if "attempt" in fields]


def live(claim: Claim) -> Receipt:
    return Receipt(external_id=f"x-{claim.id}", confirmed_at=datetime.now(UTC))


async def test_a_settle_batch_writes_the_claims_that_hold_and_refuses_a_lost_lease(
    engine: AsyncEngine, settings: Settings, agencies: list[str]
) -> None:
    ids = await approved_deliveries(engine, settings, 2)
    claims = await claim_many(engine, ids, lease_seconds=60)
    assert all(isinstance(c, Claim) and c.attempt == 1 for c in claims)
    first: list[Claim] = claims  # type: ignore[assignment]
    lost = first[2]
    async with transaction(engine) as conn:  # its worker stalled past the lease ...
        past = datetime.now(UTC) - timedelta(seconds=1)
        await conn.execute(
            deliveries.update().where(deliveries.c.id == lost.id).values(lease_until=past)
        )
    [again] = await claim_many(engine, [lost.id], lease_seconds=60)  # ... and another took over
    assert isinstance(again, Claim) and again.attempt == 2

    outcomes = [
        receipt_outcome(first[0], live(first[0])),
        failure_outcome(first[1], "permanent: 400", None),  # other columns: an UPDATE of its own
        receipt_outcome(lost, live(lost)),
        receipt_outcome(first[3], live(first[3])),
    ]
    assert await settle_many(engine, outcomes) == [True, True, False, True]
    assert await rows(engine) == {
        ids[0]: (PUBLISHED, 1),
        ids[1]: (FAILED, 1),
        ids[2]: (SENDING, 2),  # untouched: the new claim's to settle
        ids[3]: (PUBLISHED, 1),
    }
    assert sorted(await outcome_events(engine)) == [
        (ids[0], "delivery.published", 1),
        (ids[1], "delivery.failed", 1),
        (ids[3], "delivery.published", 1),
    ]

    assert await settle_many(engine, [receipt_outcome(again, live(again))]) == [True]
    assert (await rows(engine))[ids[2]] == (PUBLISHED, 2)
    assert (ids[2], "delivery.published", 2) in await outcome_events(engine)
    async with engine.connect() as conn:
        assert (await ledger.verify(conn)).ok


async def test_a_claim_batch_leases_each_row_once(
    engine: AsyncEngine, settings: Settings, agencies: list[str]
) -> None:
    ids = await approved_deliveries(engine, settings, 1)
    results = await claim_many(engine, [ids[1], ids[0], ids[1]], lease_seconds=60)
    assert [type(r).__name__ for r in results] == ["Claim", "Claim", "NoneType"]
    assert [r.id for r in results if isinstance(r, Claim)] == [ids[1], ids[0]]
    assert await claim_many(engine, ids, lease_seconds=60) == [None, None]  # leased: not again
    assert await rows(engine) == {ids[0]: (SENDING, 1), ids[1]: (SENDING, 1)}
    claim = results[1]
    assert isinstance(claim, Claim)
    assert claim.publication.agency_name == "示范市公共资源交易中心"
    assert claim.publication.title == bid_candidates()["title"]


async def test_one_batch_settles_first_then_claims_and_appends_once(
    engine: AsyncEngine, settings: Settings, agencies: list[str]
) -> None:
    ids = await approved_deliveries(engine, settings, 2)
    first = await claim_many(engine, ids[:2], lease_seconds=60)
    assert all(isinstance(c, Claim) for c in first)
    retry_at = datetime.now(UTC) + timedelta(minutes=5)
    outcomes = [failure_outcome(first[0], "RetryableError: 503", retry_at)]  # type: ignore[arg-type]
    async with engine.connect() as conn:
        head = (await ledger.verify(conn)).checked
    written, claims = await settle_and_claim(engine, outcomes, [ids[0], ids[1], ids[2]], 60)
    assert written == [True]
    later, leased, claim = claims
    assert isinstance(later, Later) and later.delay > 200  # sees the retry time just written
    assert leased is None  # still leased to the first claim
    assert isinstance(claim, Claim) and claim.id == ids[2]
    async with engine.connect() as conn:
        assert (await ledger.verify(conn)).checked == head + 1  # the outcome's event


async def test_every_column_of_a_batch_of_outcomes_round_trips(
    engine: AsyncEngine, settings: Settings, agencies: list[str]
) -> None:
    """Five outcomes in one batch (two shapes, three and two rows): PostgreSQL's arrays and
    SQLite's padded rows write each column of each row, and nothing else."""
    ids = await approved_deliveries(engine, settings, 3)
    claims: list[Claim] = await claim_many(engine, ids[:5], lease_seconds=60)  # type: ignore[assignment]
    soon = datetime.now(UTC) + timedelta(minutes=5)
    stamps = [soon + timedelta(seconds=i) for i in range(3)]
    receipts = [
        Receipt(external_id=f"外-{c.id}", url=f"https://example.test/{c.id}",
                confirmed_at=datetime.now(UTC), steps={"media_id": f"m{c.id}", "页": 1})
        for c in claims[3:]
    ]  # fmt: skip
    outcomes = [failure_outcome(c, f"RetryableError: 50{i}", stamps[i])
                for i, c in enumerate(claims[:3])]  # fmt: skip
    outcomes += [receipt_outcome(c, r) for c, r in zip(claims[3:], receipts, strict=True)]
    assert await settle_many(engine, outcomes) == [True] * 5
    async with engine.connect() as conn:
        found = {r.id: r for r in await conn.execute(sa.select(deliveries))}
    for i, claim in enumerate(claims[:3]):
        row = found[claim.id]
        assert (row.status, row.next_attempt_at, row.last_error) == (
            "retrying",
            stamps[i],
            f"RetryableError: 50{i}",
        )
        assert row.lease_until is None and row.confirmed_at is None
    for claim, receipt in zip(claims[3:], receipts, strict=True):
        row = found[claim.id]
        assert (row.status, row.external_id, row.url, row.confirmed_at) == (
            PUBLISHED,
            receipt.external_id,
            receipt.url,
            receipt.confirmed_at,
        )
        assert row.steps == {"media_id": f"m{claim.id}", "页": 1} and row.last_error is None
    assert found[ids[5]].status == "pending"  # not in the batch: untouched
