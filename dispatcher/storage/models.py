"""The SQL schema (SQLAlchemy Core): agencies, tokens, items and versions, deliveries, the ledger.

SQL is the source of truth. Times are stored as UTC and always come back timezone-aware, on
SQLite as on PostgreSQL. Changes to these tables need an Alembic migration in `migrations/`;
a test compares the migrated schema with this module.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from channels import FIRST_PLATFORM
from dispatcher.rules.states import Action, DeliveryStatus

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# Integer primary keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC; naive values are refused rather than guessed."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # pragma: no cover - defensive, SQLite returns datetime
            value = datetime.fromisoformat(value)
        stamp: datetime = value
        return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


agencies = sa.Table(
    "agencies",
    metadata,
    sa.Column("code", sa.String(18), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("region", sa.String(6), nullable=False),
    sa.Column("index_prefix", sa.String(40), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("agency_code", sa.ForeignKey("agencies.code"), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("holder", sa.String(100), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime()),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("agency_code", sa.ForeignKey("agencies.code"), nullable=False),
    sa.Column("domain", sa.String(32), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("latest_version", sa.Integer(), nullable=False),
    sa.Column("live_version", sa.Integer()),
    sa.Column("index_no", sa.String(64), unique=True),
    sa.Column("idempotency_key", sa.String(200)),
    sa.Column("request_hash", sa.String(64)),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("agency_code", "idempotency_key"),
    sa.Index(None, "agency_code", "status", "id"),
    sa.Index(None, "domain", "category", "id"),
)

item_versions = sa.Table(
    "item_versions",
    metadata,
    sa.Column("item_id", sa.ForeignKey("items.id"), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("body_html", sa.Text(), nullable=False),
    sa.Column("fields", sa.JSON(), nullable=False),
    sa.Column("withheld", sa.JSON(), nullable=False),
    sa.Column("formed_on", sa.Date(), nullable=False),
    sa.Column("changed_on", sa.Date()),
    sa.Column("decision", sa.String(32)),
    sa.Column("approving_agency", sa.String(18)),
    sa.Column("implementing_agency", sa.String(18)),
    sa.Column("authoring_agency", sa.String(18)),  # 谁制作、谁公开
    sa.Column("project_code", sa.String(64)),
    sa.Column("region", sa.String(6), nullable=False),
    sa.Column("document_number", sa.String(200)),
    sa.Column("keywords", sa.JSON(), nullable=False),
    sa.Column("validity", sa.String(16), nullable=False),
    sa.Column("channels", sa.JSON(), nullable=False),
    sa.Column("publish_at", UTCDateTime()),
    sa.Column("late_reason", sa.Text()),
    sa.Column("change_note", sa.Text()),
    sa.Column("deadline", sa.Date(), nullable=False),
    sa.Column("deadline_provisional", sa.Boolean(), nullable=False),
    # The rule that set `deadline`, its basis and start, and the rules' version (limits.py).
    sa.Column("deadline_rule", sa.JSON()),
    sa.Column("submitted_by", sa.String(100), nullable=False),
    sa.Column("submitted_at", UTCDateTime(), nullable=False),
    sa.Column("approved_by", sa.String(100)),
    sa.Column("approved_at", UTCDateTime()),
    sa.Index(None, "project_code"),
)

# A version's content: what intake stores, a withdrawal copies, and the API returns. Everything
# else in `item_versions` is about the version (its kind, status, who, when, why).
VERSION_CONTENT = (
    "title", "summary", "body_html", "formed_on", "decision", "approving_agency",
    "implementing_agency", "authoring_agency", "project_code", "region", "document_number",
    "keywords", "validity",
    "fields", "withheld", "channels", "publish_at", "late_reason", "deadline",
    "deadline_provisional", "deadline_rule",
)  # fmt: skip

index_counters = sa.Table(
    "index_counters",
    metadata,
    sa.Column("agency_code", sa.ForeignKey("agencies.code"), primary_key=True),
    sa.Column("year", sa.Integer(), primary_key=True),
    sa.Column("last_serial", sa.Integer(), nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("item_id", Id, nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime()),
    sa.Column("lease_until", UTCDateTime()),
    sa.Column("steps", sa.JSON(), nullable=False),
    sa.Column("external_id", sa.String(200)),
    sa.Column("url", sa.String(1000)),
    sa.Column("requested_at", UTCDateTime(), nullable=False),
    sa.Column("confirmed_at", UTCDateTime()),
    sa.Column("last_error", sa.Text()),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(
        ["item_id", "version"], ["item_versions.item_id", "item_versions.version"]
    ),
    sa.UniqueConstraint("item_id", "version", "channel"),
    sa.Index(None, "status", "next_attempt_at"),
)


# A followers' digest (群发) of one account (`channel`) for one Beijing day: what its deliveries
# published in (window_start, cut_at], sent as one mass message. Leased like a delivery.
digests = sa.Table(
    "digests",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("day", sa.Date(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("window_start", UTCDateTime(), nullable=False),
    sa.Column("cut_at", UTCDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime()),
    sa.Column("lease_until", UTCDateTime()),
    sa.Column("steps", sa.JSON(), nullable=False),
    sa.Column("external_id", sa.String(200)),
    sa.Column("merged_into", Id),
    sa.Column("requested_at", UTCDateTime(), nullable=False),
    sa.Column("confirmed_at", UTCDateTime()),
    sa.Column("last_error", sa.Text()),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("channel", "day"),
    sa.Index(None, "status", "next_attempt_at"),
)


def live_on_first_platform(table: sa.FromClause) -> sa.ColumnElement[bool]:
    """A row of `deliveries` (or an alias) that put its version live on the first platform
    (第一平台, the government website): the publication time deadlines are kept by."""
    return sa.and_(
        table.c.channel == FIRST_PLATFORM,
        table.c.action == Action.PUBLISH,
        table.c.status == DeliveryStatus.PUBLISHED,
    )


events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", Id, primary_key=True, autoincrement=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(48), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("item_id", Id),
    sa.Column("version", sa.Integer()),
    sa.Column("delivery_id", Id),
    sa.Column("data", sa.Text(), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index(None, "item_id", "seq"),
)

# One row: the sequence number and hash of the newest event. Locking it serialises appends.
ledger_head = sa.Table(
    "ledger_head",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("seq", Id, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# The site search (search.py): each approved version's normalized title and summary, and its
# n-grams. Written at approval, never changed; the query decides which version is public. The
# grams' primary key leads with the gram: it is the inverted index (on SQLite, the table itself).
search_documents = sa.Table(
    "search_documents",
    metadata,
    sa.Column("item_id", Id, primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("text", sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(
        ["item_id", "version"], ["item_versions.item_id", "item_versions.version"]
    ),
)

search_grams = sa.Table(
    "search_grams",
    metadata,
    sa.Column("gram", sa.String(40), primary_key=True),
    sa.Column("item_id", Id, primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.ForeignKeyConstraint(
        ["item_id", "version"], ["search_documents.item_id", "search_documents.version"]
    ),
    sqlite_with_rowid=False,
)
