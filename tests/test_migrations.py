"""The Alembic migrations produce exactly the schema `models.py` describes, and run both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from dispatcher.storage.db import Database, current_revision, migrate
from dispatcher.storage.models import metadata


async def test_migrated_schema_matches_models(db: Database) -> None:
    def diff(sync_conn: Any) -> list[Any]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with db.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    try:
        await migrate(db)
        await migrate(db)  # idempotent
        async with db.connect() as conn:
            assert await current_revision(conn) == "0004"
        from alembic import command

        from dispatcher.storage.db import _alembic_config

        def down(sync_conn: Any) -> None:
            config = _alembic_config()
            config.attributes["connection"] = sync_conn
            command.downgrade(config, "base")

        async with db.transaction() as conn:
            await conn.run_sync(down)
        async with db.connect() as conn:
            assert await current_revision(conn) is None
        await migrate(db)
        async with db.connect() as conn:
            assert await current_revision(conn) == "0004"
    finally:
        await db.dispose()
