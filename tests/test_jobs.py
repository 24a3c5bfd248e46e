"""The worker's dependencies: batches of claims and outcomes over the worker's own engine."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.dispatch.deliveries import Claim
from dispatcher.dispatch.jobs import WorkerDeps
from dispatcher.settings import Settings
from dispatcher.storage.db import create_engine
from tests.test_deliveries import approved_deliveries


async def test_a_batch_whose_connection_died_runs_again_on_a_fresh_one(
    db_url: str, engine: AsyncEngine, settings: Settings, agencies: list[str]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("a server that drops connections: PostgreSQL only")
    ids = await approved_deliveries(engine, settings, 1)
    worker_engine = create_engine(db_url, pre_ping=False)  # as the worker makes it
    try:
        deps = WorkerDeps.build(settings, worker_engine, {}, [])
        async with worker_engine.connect() as conn:  # the pooled connection the batch gets ...
            pid = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        async with engine.connect() as conn:  # ... is dropped by the server
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        claim = await deps.claim(ids[0])
        assert isinstance(claim, Claim) and claim.attempt == 1
    finally:
        await worker_engine.dispose()
