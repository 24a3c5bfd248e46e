"""Statutory time limits as the law states them: the rule behind each deadline, and 谁制作、谁公开.

Each version records the rule its deadline was computed by (`deadline_rule`, with the rules'
version). Versions stored before this revision were judged by version 1 of the rules: N working
days after `formed_on` (or the change date), 7 for a permit or penalty decision and for the
three categories whose catalogue entry said 7, 20 for every other; that is what they record.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The shipped catalogue's categories that had 7 working days under version 1 of the rules.
SEVEN_DAYS = {("mining", "approval_result"), ("procurement", "violation_record")}
SEVEN_DAYS_ANY_DOMAIN = {"blacklist"}
GENERAL_BASIS = "《中华人民共和国政府信息公开条例》第二十六条"
DECISION_BASIS = "《国务院办公厅关于推进公共资源配置领域政府信息公开的意见》（国办发〔2017〕97号）"
BATCH = 500


def upgrade() -> None:
    op.add_column("item_versions", sa.Column("authoring_agency", sa.String(length=18)))
    op.add_column("item_versions", sa.Column("deadline_rule", sa.JSON()))
    _backfill()


def _rule_v1(domain: str, category: str, decision: str | None, start: str) -> dict[str, object]:
    seven = (
        decision is not None
        or (domain, category) in SEVEN_DAYS
        or category in SEVEN_DAYS_ANY_DOMAIN
    )
    rule = {
        "version": 1, "kind": "deadline", "count": 7 if seven else 20, "unit": "working_days",
        "from": "成文日期或变更日期", "basis": DECISION_BASIS if seven else GENERAL_BASIS,
        "start": start,
    }  # fmt: skip
    return rule


def _backfill() -> None:
    conn = op.get_bind()
    versions = sa.table(
        "item_versions",
        sa.column("item_id", sa.Integer()),
        sa.column("version", sa.Integer()),
        sa.column("decision", sa.String()),
        sa.column("formed_on", sa.Date()),
        sa.column("changed_on", sa.Date()),
        sa.column("deadline_rule", sa.JSON()),
    )
    items = sa.table(
        "items", sa.column("id", sa.Integer()), sa.column("domain", sa.String()),
        sa.column("category", sa.String()),
    )  # fmt: skip
    rows = conn.execute(
        sa.select(versions.c.item_id, versions.c.version, versions.c.decision,
                  versions.c.formed_on, versions.c.changed_on, items.c.domain, items.c.category)
        .join(items, items.c.id == versions.c.item_id)
    ).all()  # fmt: skip
    update = (
        versions.update()
        .where(versions.c.item_id == sa.bindparam("i"), versions.c.version == sa.bindparam("v"))
        .values(deadline_rule=sa.bindparam("rule", type_=sa.JSON()))
    )
    for at in range(0, len(rows), BATCH):
        batch = [
            {"i": r.item_id, "v": r.version,
             "rule": _rule_v1(r.domain, r.category, r.decision, str(r.changed_on or r.formed_on))}
            for r in rows[at : at + BATCH]
        ]  # fmt: skip
        conn.execute(update, batch)


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite has it since 3.35): a batch copy of the table
    # would drop `item_versions`, which deliveries and the search index reference.
    op.drop_column("item_versions", "deadline_rule")
    op.drop_column("item_versions", "authoring_agency")
