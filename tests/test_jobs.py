"""The worker's dependencies: batches of claims and outcomes over the worker's own db."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dispatcher.dispatch.claims import Claim
from dispatcher.dispatch.jobs import WorkerDeps
from dispatcher.rules.rulebook import Rules
from dispatcher.settings import Settings
from dispatcher.storage.db import Database
from tests.helpers import approved_deliveries


async def test_a_batch_whose_connection_died_runs_again_on_a_fresh_one(
    db_url: str, db: Database, settings: Settings, rules: Rules, agencies: list[str]
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("a server that drops connections: PostgreSQL only")
    ids = await approved_deliveries(db, rules, 1)
    worker_db = Database(db_url, pre_ping=False)  # as the worker makes it
    try:
        deps = WorkerDeps.build(settings, worker_db, rules.catalogue, {}, [])
        async with worker_db.connect() as conn:  # the pooled connection the batch gets ...
            pid = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        async with db.connect() as conn:  # ... is dropped by the server
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        claim = await deps.claim(ids[0])
        assert isinstance(claim, Claim) and claim.attempt == 1
    finally:
        await worker_db.dispose()
