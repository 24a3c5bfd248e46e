"""Claims and outcomes in batches, straight against SQL: leases, guards and ledger events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from channels.base import Receipt
from dispatcher.dispatch.claims import Claim, Later
from dispatcher.dispatch.deliveries import claim_many, save_steps, settle_and_claim, settle_many
from dispatcher.dispatch.outcomes import failure_outcome, receipt_outcome
from dispatcher.rules.rulebook import Rules
from dispatcher.rules.states import DeliveryStatus
from dispatcher.storage import ledger
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries, events
from tests.helpers import approved_deliveries, bid_candidates


async def rows(db: Database) -> dict[int, tuple[str, int]]:
    async with db.connect() as conn:
        found = await conn.execute(sa.select(deliveries.c.id, deliveries.c.status,
                                             deliveries.c.attempts))  # fmt: skip
        return {r.id: (r.status, r.attempts) for r in found}


async def outcome_events(db: Database) -> list[tuple[int, str, int]]:
    """(delivery id, kind, attempt) of the ledger's events about attempts."""
    async with db.connect() as conn:
        found = await conn.execute(
            sa.select(events.c.delivery_id, events.c.kind, events.c.data).order_by(events.c.seq)
        )
        data = [(r.delivery_id, r.kind, json.loads(r.data)) for r in found]
        return [(d, kind, fields["attempt"]) for d, kind, fields in data if "attempt" in fields]


def live(claim: Claim) -> Receipt:
    return Receipt(external_id=f"x-{claim.id}", confirmed_at=datetime.now(UTC))


async def test_a_settle_batch_writes_the_claims_that_hold_and_refuses_a_lost_lease(
    db: Database, rules: Rules, agencies: list[str]
) -> None:
    ids = await approved_deliveries(db, rules, 2)
    claims = await claim_many(db, ids, 60, rules.catalogue)
    assert all(isinstance(c, Claim) and c.attempt == 1 for c in claims)
    first: list[Claim] = claims  # type: ignore[assignment]
    lost = first[2]
    async with db.transaction() as conn:  # its worker stalled past the lease ...
        past = datetime.now(UTC) - timedelta(seconds=1)
        await conn.execute(
            deliveries.update().where(deliveries.c.id == lost.id).values(lease_until=past)
        )
    [again] = await claim_many(db, [lost.id], 60, rules.catalogue)  # ... and another took over
    assert isinstance(again, Claim) and again.attempt == 2

    outcomes = [
        receipt_outcome(first[0], live(first[0])),
        failure_outcome(first[1], "permanent: 400", None),  # other columns: an UPDATE of its own
        receipt_outcome(lost, live(lost)),
        receipt_outcome(first[3], live(first[3])),
    ]
    assert await settle_many(db, outcomes) == [True, True, False, True]
    assert await rows(db) == {
        ids[0]: (DeliveryStatus.PUBLISHED, 1),
        ids[1]: (DeliveryStatus.FAILED, 1),
        ids[2]: (DeliveryStatus.SENDING, 2),  # untouched: the new claim's to settle
        ids[3]: (DeliveryStatus.PUBLISHED, 1),
    }
    assert sorted(await outcome_events(db)) == [
        (ids[0], "delivery.published", 1),
        (ids[1], "delivery.failed", 1),
        (ids[3], "delivery.published", 1),
    ]

    assert await settle_many(db, [receipt_outcome(again, live(again))]) == [True]
    assert (await rows(db))[ids[2]] == (DeliveryStatus.PUBLISHED, 2)
    assert (ids[2], "delivery.published", 2) in await outcome_events(db)
    async with db.connect() as conn:
        assert (await ledger.verify(conn)).ok


async def test_a_claim_batch_leases_each_row_once(
    db: Database, rules: Rules, agencies: list[str]
) -> None:
    ids = await approved_deliveries(db, rules, 1)
    results = await claim_many(db, [ids[1], ids[0], ids[1]], 60, rules.catalogue)
    assert [type(r).__name__ for r in results] == ["Claim", "Claim", "NoneType"]
    assert [r.id for r in results if isinstance(r, Claim)] == [ids[1], ids[0]]
    assert await claim_many(db, ids, 60, rules.catalogue) == [None, None]  # leased: not again
    assert await rows(db) == {
        ids[0]: (DeliveryStatus.SENDING, 1),
        ids[1]: (DeliveryStatus.SENDING, 1),
    }
    claim = results[1]
    assert isinstance(claim, Claim)
    assert claim.publication.agency_name == "示范市公共资源交易中心"
    assert claim.publication.title == bid_candidates()["title"]


async def test_one_batch_settles_first_then_claims_and_appends_once(
    db: Database, rules: Rules, agencies: list[str]
) -> None:
    ids = await approved_deliveries(db, rules, 2)
    first = await claim_many(db, ids[:2], 60, rules.catalogue)
    assert all(isinstance(c, Claim) for c in first)
    retry_at = datetime.now(UTC) + timedelta(minutes=5)
    outcomes = [failure_outcome(first[0], "RetryableError: 503", retry_at)]  # type: ignore[arg-type]
    async with db.connect() as conn:
        head = (await ledger.verify(conn)).checked
    written, claims = await settle_and_claim(
        db, outcomes, [ids[0], ids[1], ids[2]], 60, rules.catalogue
    )
    assert written == [True]
    later, leased, claim = claims
    assert isinstance(later, Later) and later.delay > 200  # sees the retry time just written
    assert leased is None  # still leased to the first claim
    assert isinstance(claim, Claim) and claim.id == ids[2]
    async with db.connect() as conn:
        assert (await ledger.verify(conn)).checked == head + 1  # the outcome's event


async def test_every_column_of_a_batch_of_outcomes_round_trips(
    db: Database, rules: Rules, agencies: list[str]
) -> None:
    """Five outcomes in one batch (two shapes, three and two rows): PostgreSQL's arrays and
    SQLite's padded rows write each column of each row, and nothing else."""
    ids = await approved_deliveries(db, rules, 3)
    claims: list[Claim] = await claim_many(db, ids[:5], 60, rules.catalogue)  # type: ignore[assignment]
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
    assert await settle_many(db, outcomes) == [True] * 5
    async with db.connect() as conn:
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
            DeliveryStatus.PUBLISHED,
            receipt.external_id,
            receipt.url,
            receipt.confirmed_at,
        )
        assert row.steps == {"media_id": f"m{claim.id}", "页": 1} and row.last_error is None
    assert found[ids[5]].status == "pending"  # not in the batch: untouched


async def test_steps_are_saved_only_while_the_claim_holds_the_lease(
    db: Database, rules: Rules, agencies: list[str]
) -> None:
    ids = await approved_deliveries(db, rules, 1)
    [first] = await claim_many(db, ids[:1], 60, rules.catalogue)
    assert isinstance(first, Claim)
    assert await save_steps(db, first, {"media_id": "m-1"})
    async with db.transaction() as conn:  # its worker stalled past the lease ...
        past = datetime.now(UTC) - timedelta(seconds=1)
        await conn.execute(
            deliveries.update().where(deliveries.c.id == first.id).values(lease_until=past)
        )
    [again] = await claim_many(db, ids[:1], 60, rules.catalogue)  # ... another took over
    assert isinstance(again, Claim) and again.publication.steps == {"media_id": "m-1"}
    assert not await save_steps(db, first, {"media_id": "m-1", "draft_id": "stale"})
    assert await save_steps(db, again, {"media_id": "m-1", "draft_id": "d-2"})
    async with db.connect() as conn:
        steps = (
            await conn.execute(sa.select(deliveries.c.steps).where(deliveries.c.id == first.id))
        ).scalar_one()
        assert (await ledger.verify(conn)).ok
    assert steps == {"media_id": "m-1", "draft_id": "d-2"}
