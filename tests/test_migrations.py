"""The Alembic migrations produce exactly the schema `models.py` describes, and run both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.storage.db import create_engine, current_revision, migrate, transaction
from dispatcher.storage.models import metadata


async def test_migrated_schema_matches_models(engine: AsyncEngine) -> None:
    def diff(sync_conn: Any) -> list[Any]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    try:
        await migrate(engine)
        await migrate(engine)  # idempotent
        async with engine.connect() as conn:
            assert await current_revision(conn) == "0002"
        from alembic import command

        from dispatcher.storage.db import _alembic_config

        def down(sync_conn: Any) -> None:
            config = _alembic_config()
            config.attributes["connection"] = sync_conn
            command.downgrade(config, "base")

        async with transaction(engine) as conn:
            await conn.run_sync(down)
        async with engine.connect() as conn:
            assert await current_revision(conn) is None
        await migrate(engine)
        async with engine.connect() as conn:
            assert await current_revision(conn) == "0002"
    finally:
        await engine.dispose()
