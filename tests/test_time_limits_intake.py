"""Intake applies each category's statutory time rule: the deadline and its basis are returned,
a lead time the release cannot meet and a publicity period under the minimum are refused unless
a late reason is given, 谁制作谁公开 is checked, and a personal field is withheld by default.

Dates are hand-computed on the official 2026 calendar (National Day: 1–7 October off; Saturday
10 October worked)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import command

from dispatcher.rules.deadlines import today
from dispatcher.storage.db import Database, _alembic_config
from dispatcher.storage.models import item_versions
from tests.helpers import CENTER, HOUSING, Client, TokenFactory, bid_candidates


async def post(client: Client, headers: dict[str, str], item: dict[str, Any]) -> tuple[int, Any]:
    response = await client.post("/api/v1/items", json=item, headers=headers)
    return response.status, await response.json()


def errors(body: Any) -> dict[str, str]:
    return {e["field"]: e["detail"] for e in body["errors"]}


def land_notice(bidding_start: date, **changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "domain": "land", "category": "transfer_notice", "title": "国有建设用地使用权挂牌出让公告",
        "formed_on": today().isoformat(), "implementing_agency": CENTER, "region": "990100",
        "fields": {"parcels": [{"parcel_no": "SF2026-17"}],
                   "bidding_start": bidding_start.isoformat()},
    }  # fmt: skip
    item.update(changes)
    return item


async def test_bid_candidates_have_three_calendar_days_with_the_basis(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor")
    # Received the report on Wednesday 30 September: 3 days end on Saturday 3 October, inside
    # the National Day holiday; the period ends on the next working day, Thursday 8 October.
    status, body = await post(client, editor, bid_candidates(formed_on="2026-09-30"))
    assert status == 201, body
    assert body["deadline"] == "2026-10-08"
    rule = body["deadline_rule"]
    assert (rule["version"], rule["kind"], rule["count"], rule["unit"]) == (
        2,
        "deadline",
        3,
        "days",
    )
    assert "招标投标法实施条例" in rule["basis"] and "第五十四条" in rule["basis"]
    assert rule["start"] == "2026-09-30" and rule["from"]


async def test_a_publicity_period_under_the_minimum_needs_a_reason(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor")
    short = bid_candidates()
    short["fields"] = {**short["fields"], "publicity_start": "2026-11-21",
                       "publicity_end": "2026-11-23"}  # fmt: skip
    status, body = await post(client, editor, short)
    assert status == 422
    message = errors(body)["fields.publicity_end"]
    # Saturday 21 November + 3 days = Tuesday 24 November.
    assert "公示期" in message and "2026-11-24" in message and "late_reason" in message
    status, body = await post(client, editor, {**short, "late_reason": "项目紧急，经批准缩短"})
    assert status == 201 and body["late_reason"] == "项目紧急，经批准缩短"


async def test_a_land_notice_must_go_out_twenty_days_before_the_listing_starts(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor")
    soon = today() + timedelta(days=10)
    status, body = await post(client, editor, land_notice(soon))
    assert status == 422
    message = errors(body)["late_reason"]
    assert "20日" in message and (soon - timedelta(days=20)).isoformat() in message
    assert "国土资源部令第39号" in message

    later = today() + timedelta(days=30)
    status, body = await post(client, editor, land_notice(later))
    assert status == 201, body
    assert body["deadline"] == (later - timedelta(days=20)).isoformat()
    assert body["deadline_rule"]["kind"] == "lead" and body["deadline_rule"]["before"]

    # Scheduled for a day too late to give 20 days' notice: refused the same way.
    at = f"{(later - timedelta(days=15)).isoformat()}T09:00:00+08:00"
    status, body = await post(client, editor, land_notice(later, publish_at=at))
    assert status == 422 and "late_reason" in errors(body)


async def test_a_procurement_result_has_two_working_days(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor")
    item = {
        "domain": "procurement", "category": "procurement_result", "title": "采购结果公告",
        "formed_on": "2026-11-20", "implementing_agency": CENTER, "region": "990100",
        "fields": {"supplier": "示范科技有限公司", "amount": "980000.00"},
    }  # fmt: skip
    status, body = await post(client, editor, item)
    assert status == 201, body
    assert body["deadline"] == "2026-11-24"  # Friday + 2 working days: Tuesday
    assert "第四十三条" in body["deadline_rule"]["basis"]


async def test_a_penalty_decision_keeps_its_seven_working_days_on_top(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor")
    item = {
        "domain": "procurement", "category": "inspection_decision", "title": "监督检查处理决定",
        "formed_on": "2026-09-30", "authoring_agency": CENTER, "region": "990100",
        "decision": "administrative_penalty", "fields": {},
    }  # fmt: skip
    status, body = await post(client, editor, item)
    assert status == 201, body
    # 7 working days after 30 September: 8, 9, 10 (Sat, worked), 12, 13, 14, 15 October.
    assert body["deadline"] == "2026-10-15"
    assert body["deadline_rule"]["count"] == 7 and "97号" in body["deadline_rule"]["basis"]


async def test_policies_are_published_by_the_agency_that_drafted_them(
    client: Client, make_token: TokenFactory
) -> None:
    item = {
        "domain": "housing", "category": "allocation_policy", "title": "公共租赁住房分配管理办法",
        "formed_on": "2026-11-20", "region": "990100", "fields": {},
    }  # fmt: skip
    housing = await make_token("editor", agency=HOUSING)
    status, body = await post(client, housing, item)
    assert status == 422 and "authoring_agency" in errors(body)
    status, body = await post(client, housing, {**item, "authoring_agency": CENTER})
    assert status == 403 and "谁制作谁公开" in body["detail"]
    status, body = await post(client, housing, {**item, "authoring_agency": HOUSING})
    assert status == 201 and body["authoring_agency"] == HOUSING


async def test_a_phone_number_is_withheld_even_when_not_listed(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor")
    status, body = await post(client, editor, bid_candidates(withheld=[]))
    assert status == 201, body
    assert "project_lead_phone" not in body["fields"]["candidates"][0]
    phone = "fields.candidates[0].project_lead_phone"
    privacy = {"basis": "personal_privacy", "basis_name": "个人隐私"}
    assert body["withheld"] == [{"field": phone, **privacy}]


async def test_versions_stored_before_the_rules_keep_their_deadline_and_say_by_which_rule(
    client: Client, make_token: TokenFactory, db: Database
) -> None:
    editor = await make_token("editor")
    _, first = await post(client, editor, bid_candidates())
    _, penalty = await post(client, editor, bid_candidates(decision="administrative_penalty"))

    def down_and_up(sync_conn: Any) -> None:
        config = _alembic_config()
        config.attributes["connection"] = sync_conn
        command.downgrade(config, "0003")  # as a database before these rules
        command.upgrade(config, "head")

    async with db.transaction() as conn:
        await conn.run_sync(down_and_up)
        rows = (
            await conn.execute(
                sa.select(item_versions.c.item_id, item_versions.c.deadline,
                          item_versions.c.deadline_rule).order_by(item_versions.c.item_id)
            )
        ).all()  # fmt: skip
    assert [r.deadline.isoformat() for r in rows] == [first["deadline"], penalty["deadline"]]
    general, decision = (r.deadline_rule for r in rows)
    assert (general["version"], general["count"], general["unit"]) == (1, 20, "working_days")
    assert "第二十六条" in general["basis"] and general["start"] == "2026-11-20"
    assert (decision["version"], decision["count"]) == (1, 7) and "97号" in decision["basis"]
