"""The item API end to end: submit, approve, revise, withdraw, read, list."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from channels.base import SHANGHAI
from dispatcher.rules.deadlines import today
from dispatcher.storage import ledger
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries, events
from tests.helpers import CENTER, TokenFactory, bid_candidates

Client = TestClient[Any, Any]


async def submit(client: Client, headers: dict[str, str], item: dict[str, Any]) -> Any:
    response = await client.post("/api/v1/items", json=item, headers=headers)
    assert response.status == 201, await response.text()
    return await response.json()


async def test_submit_returns_deadline_and_strips_withheld(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor")
    body = await submit(client, editor, bid_candidates())
    assert body["status"] == "submitted"
    # Bid candidates: 3 days from the evaluation report, 2026-11-20 (Friday): 2026-11-23.
    assert body["deadline"] == "2026-11-23"
    assert body["deadline_provisional"] is False
    assert body["index_no"] is None
    assert "13800000000" not in json.dumps(body)
    assert body["fields"]["candidates"][0] == {
        "rank": 1,
        "name": "示范建设集团有限公司",
        "bid_price": "12345678.00",
        "project_lead": "张某",
    }
    assert body["withheld"] == [
        {
            "field": "fields.candidates[0].project_lead_phone",
            "basis": "personal_privacy",
            "basis_name": "个人隐私",
        }
    ]


async def test_a_decision_keeps_the_category_rule_when_it_is_sooner(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor")
    item = bid_candidates(decision="administrative_penalty", formed_on="2026-09-30")
    body = await submit(client, editor, item)
    # 3 days end on 3 October, a holiday: 8 October; the decision's 7 working days, 15 October.
    assert body["deadline"] == "2026-10-08" and body["deadline_rule"]["count"] == 3


async def test_approve_assigns_index_number_and_writes_outbox(
    client: Client, make_token: TokenFactory, db: Database
) -> None:
    editor = await make_token("editor", holder="张编辑")
    approver = await make_token("approver", holder="李审核")
    first = await submit(client, editor, bid_candidates())
    second = await submit(client, editor, bid_candidates(title="第二个公示"))
    for item in (first, second):
        response = await client.post(f"/api/v1/items/{item['id']}/approve", headers=approver)
        assert response.status == 200, await response.text()
    one = await (await client.get(f"/api/v1/items/{first['id']}", headers=approver)).json()
    two = await (await client.get(f"/api/v1/items/{second['id']}", headers=approver)).json()
    year = one["versions"][0]["approved_at"][:4]
    assert one["status"] == "approved"
    assert one["index_no"] == f"{CENTER}/{year}-00001"
    assert two["index_no"] == f"{CENTER}/{year}-00002"
    channels = [d["channel"] for d in one["versions"][0]["deliveries"]]
    assert channels == ["website", "feeds"]
    assert {d["status"] for d in one["versions"][0]["deliveries"]} == {"pending"}
    async with db.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(deliveries))).scalar()
        assert count == 4
        assert (await ledger.verify(conn)).ok


async def test_scheduled_item(client: Client, make_token: TokenFactory) -> None:
    editor = await make_token("editor")
    approver = await make_token("approver")
    day = today() + timedelta(days=1)  # within the 3 days bid candidates have from today
    at = datetime.combine(day, time(9), SHANGHAI)
    item = bid_candidates(formed_on=today().isoformat(), publish_at=at.isoformat())
    item = await submit(client, editor, item)
    response = await client.post(f"/api/v1/items/{item['id']}/approve", headers=approver)
    body = await response.json()
    assert body["status"] == "scheduled"
    delivery = body["versions"][0]["deliveries"][0]
    assert delivery["next_attempt_at"] == at.astimezone(UTC).isoformat()


async def test_publish_after_deadline_needs_a_reason(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor")
    late = bid_candidates(publish_at="2027-03-01T09:00:00+08:00")
    response = await client.post("/api/v1/items", json=late, headers=editor)
    assert response.status == 422
    problem = await response.json()
    assert [e["field"] for e in problem["errors"]] == ["late_reason"]
    late["late_reason"] = "等待上级主管部门批复"
    body = await submit(client, editor, late)
    assert body["late_reason"] == "等待上级主管部门批复"


async def test_idempotent_resubmission(client: Client, make_token: TokenFactory) -> None:
    editor = await make_token("editor")
    headers = {**editor, "Idempotency-Key": "press-2026-0042"}
    first = await client.post("/api/v1/items", json=bid_candidates(), headers=headers)
    again = await client.post("/api/v1/items", json=bid_candidates(), headers=headers)
    assert (first.status, again.status) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await first.json())["id"] == (await again.json())["id"]
    other = await client.post("/api/v1/items", json=bid_candidates(title="别的"), headers=headers)
    assert other.status == 422
    listing = await (await client.get("/api/v1/items", headers=editor)).json()
    assert len(listing["items"]) == 1


async def test_concurrent_idempotent_submissions_store_one_item(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor")
    headers = {**editor, "Idempotency-Key": "same-key"}
    responses = await asyncio.gather(
        *(client.post("/api/v1/items", json=bid_candidates(), headers=headers) for _ in range(5))
    )
    ids = {(await r.json())["id"] for r in responses}
    assert len(ids) == 1
    assert sorted(r.status for r in responses).count(201) == 1


async def test_two_concurrent_approvals_exactly_one_succeeds(
    client: Client, make_token: TokenFactory, db: Database
) -> None:
    editor = await make_token("editor", holder="编辑")
    approvers = [await make_token("approver", holder=f"审核{i}") for i in range(2)]
    item = await submit(client, editor, bid_candidates())
    url = f"/api/v1/items/{item['id']}/approve"
    responses = await asyncio.gather(*(client.post(url, headers=h) for h in approvers))
    assert sorted(r.status for r in responses) == [200, 409]
    async with db.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(deliveries))).scalar()
        approvals = (
            await conn.execute(sa.select(sa.func.count()).where(events.c.kind == "item.approved"))
        ).scalar()
    assert (count, approvals) == (2, 1)


async def test_concurrent_approvals_of_many_items_get_distinct_serials(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor", holder="编辑")
    approver = await make_token("approver", holder="审核")
    ids = [(await submit(client, editor, bid_candidates()))["id"] for _ in range(8)]
    responses = await asyncio.gather(
        *(client.post(f"/api/v1/items/{i}/approve", headers=approver) for i in ids)
    )
    numbers = [(await r.json())["index_no"] for r in responses]
    assert len(set(numbers)) == 8
    assert sorted(n[-5:] for n in numbers) == [f"{k:05d}" for k in range(1, 9)]


async def test_revision_needs_approval_and_restarts_clock(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor", holder="编辑")
    approver = await make_token("approver", holder="审核")
    item = await submit(client, editor, bid_candidates())
    await client.post(f"/api/v1/items/{item['id']}/approve", headers=approver)
    revision = {"change_note": "更正第一中标候选人投标报价", "changed_on": "2026-11-23",
                "fields": {"candidates": [{"rank": 1, "name": "示范建设集团有限公司",
                                           "bid_price": "12345000.00"}],
                           "publicity_start": "2026-11-24",
                           "publicity_end": "2026-11-27"}}  # fmt: skip
    response = await client.post(
        f"/api/v1/items/{item['id']}/revisions", json=revision, headers=editor
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["status"] == "submitted"
    assert body["latest_version"] == 2 and body["live_version"] == 1
    # The clock restarts at the change: 2026-11-23 (Monday) + 3 days: 2026-11-26.
    assert body["deadline"] == "2026-11-26"
    assert body["versions"][1]["change_note"] == "更正第一中标候选人投标报价"
    assert body["title"] == item["title"]
    response = await client.post(f"/api/v1/items/{item['id']}/approve", headers=approver)
    body = await response.json()
    assert body["live_version"] == 2
    assert body["index_no"] == item.get("index_no") or body["index_no"].endswith("-00001")
    assert [v["status"] for v in body["versions"]] == ["superseded", "approved"]
    assert len(body["versions"][1]["deliveries"]) == 2


async def test_revision_without_change_note_is_refused(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor")
    item = await submit(client, editor, bid_candidates())
    response = await client.post(
        f"/api/v1/items/{item['id']}/revisions", json={"title": "新标题"}, headers=editor
    )
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["errors"]] == ["change_note"]


async def test_withdrawal_takes_down_every_channel(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor", holder="编辑")
    approver = await make_token("approver", holder="审核")
    item = await submit(client, editor, bid_candidates())
    await client.post(f"/api/v1/items/{item['id']}/approve", headers=approver)
    url = f"/api/v1/items/{item['id']}/withdraw"
    assert (await client.post(url, json={}, headers=approver)).status == 422
    response = await client.post(url, json={"reason": "项目终止招标"}, headers=approver)
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "withdrawn"
    withdrawal = body["versions"][-1]
    assert withdrawal["kind"] == "withdrawal"
    assert withdrawal["change_note"] == "项目终止招标"
    assert [(d["channel"], d["action"]) for d in withdrawal["deliveries"]] == [
        ("website", "withdraw"),
        ("feeds", "withdraw"),
    ]
    again = await client.post(url, json={"reason": "再次撤回"}, headers=approver)
    assert again.status == 409
    revise = await client.post(
        f"/api/v1/items/{item['id']}/revisions", json={"change_note": "x"}, headers=editor
    )
    assert revise.status == 409


async def test_list_filters_and_keyset_pages(client: Client, make_token: TokenFactory) -> None:
    editor = await make_token("editor", holder="编辑")
    approver = await make_token("approver", holder="审核")
    ids = [(await submit(client, editor, bid_candidates(title=f"公示{i}")))["id"] for i in range(5)]
    await client.post(f"/api/v1/items/{ids[0]}/approve", headers=approver)
    seen: list[int] = []
    url = "/api/v1/items?limit=2"
    while url:
        page = await (await client.get(url, headers=editor)).json()
        seen += [i["id"] for i in page["items"]]
        url = page.get("next")
    assert seen == sorted(ids, reverse=True)
    approved = await (await client.get("/api/v1/items?status=approved", headers=editor)).json()
    assert [i["id"] for i in approved["items"]] == [ids[0]]
    bad = await client.get("/api/v1/items?status=nonsense", headers=editor)
    assert bad.status == 422
    none = await client.get("/api/v1/items?domain=land", headers=editor)
    assert (await none.json())["items"] == []
    future = await client.get(
        "/api/v1/items", params={"since": "2099-01-01T00:00:00+08:00"}, headers=editor
    )
    assert (await future.json())["items"] == []
    past = await client.get(
        "/api/v1/items", params={"since": "2020-01-01T00:00:00+08:00"}, headers=editor
    )
    assert len((await past.json())["items"]) == 5
    for bad in ("yesterday", "2026-11-01T00:00:00"):
        response = await client.get("/api/v1/items", params={"since": bad}, headers=editor)
        assert response.status == 422


async def test_text_area_line_endings_are_normalised(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor")
    item = bid_candidates(summary="第一行\r\n第二行")
    item["fields"]["objection_channel"] = "电话：0990-1234567\r\n邮箱：ts@example.org"
    body = await submit(client, editor, item)
    assert body["summary"] == "第一行\n第二行"
    assert body["fields"]["objection_channel"] == "电话：0990-1234567\n邮箱：ts@example.org"


async def test_catalogue_and_openapi_need_no_token(client: Client) -> None:
    catalogue = await (await client.get("/api/v1/catalogue")).json()
    assert [d["key"] for d in catalogue["domains"]] == [
        "housing", "land", "mining", "procurement", "state_assets", "bidding",
    ]  # fmt: skip
    spec = await (await client.get("/api/v1/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert "/items/{id}/approve" in spec["paths"]
    assert "ItemIn" in spec["components"]["schemas"]
    refs = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            refs.update(v for k, v in node.items() if k == "$ref")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert refs
    for ref in refs:
        target: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
