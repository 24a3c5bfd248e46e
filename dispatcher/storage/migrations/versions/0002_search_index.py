"""Site search: the n-gram index of approved versions' titles and summaries, backfilled.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dispatcher.rules.grams import index_rows

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BATCH = 500  # versions per round trip of the backfill


def upgrade() -> None:
    op.create_table(
        "search_documents",
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id", "version"],
            ["item_versions.item_id", "item_versions.version"],
            name=op.f("fk_search_documents_item_id_item_versions"),
        ),
        sa.PrimaryKeyConstraint("item_id", "version", name=op.f("pk_search_documents")),
    )
    op.create_table(
        "search_grams",
        sa.Column("gram", sa.String(length=40), nullable=False),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id", "version"],
            ["search_documents.item_id", "search_documents.version"],
            name=op.f("fk_search_grams_item_id_search_documents"),
        ),
        sa.PrimaryKeyConstraint("gram", "item_id", "version", name=op.f("pk_search_grams")),
        sqlite_with_rowid=False,
    )
    _backfill()


def _backfill() -> None:
    """Index every version that was approved (what `workflow.approve` indexes from now on)."""
    conn = op.get_bind()
    versions = sa.table(
        "item_versions",
        sa.column("item_id", sa.Integer()),
        sa.column("version", sa.Integer()),
        sa.column("kind", sa.String()),
        sa.column("title", sa.String()),
        sa.column("summary", sa.Text()),
        sa.column("approved_at", sa.DateTime()),
    )
    documents = sa.table(
        "search_documents",
        sa.column("item_id", sa.Integer()),
        sa.column("version", sa.Integer()),
        sa.column("text", sa.Text()),
    )
    grams = sa.table(
        "search_grams",
        sa.column("gram", sa.String()),
        sa.column("item_id", sa.Integer()),
        sa.column("version", sa.Integer()),
    )
    after = (0, 0)
    while True:
        rows = conn.execute(
            sa.select(versions.c.item_id, versions.c.version, versions.c.title, versions.c.summary)
            .where(
                versions.c.approved_at.is_not(None),
                versions.c.kind != "withdrawal",
                sa.tuple_(versions.c.item_id, versions.c.version) > sa.tuple_(*after),
            )
            .order_by(versions.c.item_id, versions.c.version)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        docs, gram_rows = [], []
        for row in rows:
            doc, *rest = index_rows(row.item_id, row.version, row.title, row.summary)
            docs.append(doc)
            gram_rows.extend(rest)
        conn.execute(documents.insert(), docs)
        if gram_rows:
            conn.execute(grams.insert(), gram_rows)
        after = (rows[-1].item_id, rows[-1].version)


def downgrade() -> None:
    op.drop_table("search_grams")
    op.drop_table("search_documents")
