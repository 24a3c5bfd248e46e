"""Alembic environment: runs on the connection handed in by `dispatcher.storage.db.migrate`."""

from __future__ import annotations

from alembic import context

from dispatcher.storage.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable through the alembic CLI
    raise RuntimeError("run migrations with `gongkai migrate`")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
