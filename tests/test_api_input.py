"""Bad input gets a clear problem+json error and changes nothing; good input is made safe."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from dispatcher.storage.db import Database
from dispatcher.storage.models import metadata
from tests.helpers import TokenFactory, bid_candidates

Client = TestClient[Any, Any]


async def _dump(db: Database) -> str:
    """Every row of every table, as text: what the database holds."""
    parts = []
    async with db.connect() as conn:
        for table in metadata.sorted_tables:
            rows = (await conn.execute(sa.select(table))).all()
            parts.append(f"{table.name}: {[tuple(r) for r in rows]}")
    return "\n".join(parts)


async def _count_items(db: Database) -> tuple[int, int]:
    async with db.connect() as conn:
        items = (await conn.execute(sa.text("SELECT count(*) FROM items"))).scalar_one()
        events = (await conn.execute(sa.text("SELECT count(*) FROM events"))).scalar_one()
    return items, events


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": 12345}, "title"),
        ({"title": ""}, "title"),
        ({"title": "标题\x07"}, "title"),
        ({"formed_on": "20261120"}, "formed_on"),
        ({"formed_on": "2026-02-30"}, "formed_on"),
        ({"formed_on": "2099-01-01"}, "formed_on"),
        ({"keywords": "招标"}, "keywords"),
        ({"region": "99"}, "region"),
        ({"domain": "fishing"}, "domain"),
        ({"category": "bid_lunch"}, "category"),
        ({"decision": "verbal_warning"}, "decision"),
        ({"secrecy": "top"}, "secrecy"),
        ({"publish_at": "2026-12-01T09:00:00"}, "publish_at"),
        ({"project_code": "../../etc/passwd"}, "project_code"),
        ({"implementing_agency": "not-a-code"}, "implementing_agency"),
        ({"colour": "red"}, "colour"),
        ({"channels": ["website", "pigeon"]}, "channels[1]"),
        ({"channels": ["feeds"]}, "channels"),
        ({"fields": {"candidates": [{"rank": "一", "name": "甲公司"}]}},
         "fields.candidates[0].rank"),
        ({"fields": {"lunch": "x"}}, "fields.lunch"),
        ({"withheld": [{"field": "fields.nothing_here", "basis": "trade_secret"}]},
         "withheld[0].field"),
        ({"withheld": [{"field": "title", "basis": "trade_secret"}]}, "withheld[0].field"),
        ({"withheld": [{"field": "fields.candidates[0].name", "basis": "because"}]},
         "withheld[0].basis"),
        ({"withheld": [{"field": "fields.candidates[0]", "basis": "trade_secret"}]},
         "withheld[0].field"),
    ],
)  # fmt: skip
async def test_invalid_content_is_422_with_the_field_named(
    client: Client,
    make_token: TokenFactory,
    db: Database,
    changes: dict[str, Any],
    field: str,
) -> None:
    editor = await make_token("editor")
    before = await _count_items(db)
    response = await client.post("/api/v1/items", json=bid_candidates(**changes), headers=editor)
    assert response.status == 422, await response.text()
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert field in [e["field"] for e in problem["errors"]], problem
    assert all(e["pointer"].startswith("#/") and e["detail"] for e in problem["errors"])
    assert await _count_items(db) == before


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 422),
        (b"[1, 2, 3]", "application/json", 422),
        (b"\xff\xfe", "application/json", 422),
        (b"", "application/json", 422),
        (json.dumps(bid_candidates()).encode(), "text/plain", 415),
    ],
)
async def test_malformed_requests(
    client: Client, make_token: TokenFactory, body: bytes, content_type: str, status: int
) -> None:
    editor = await make_token("editor")
    headers = {**editor, "Content-Type": content_type}
    response = await client.post("/api/v1/items", data=body, headers=headers)
    assert response.status == status
    assert response.content_type == "application/problem+json"


async def test_oversize_body_is_413(client: Client, make_token: TokenFactory, db: Database) -> None:
    editor = await make_token("editor")
    huge = json.dumps(bid_candidates(body_html="<p>" + "很" * 600_000 + "</p>")).encode()
    headers = {**editor, "Content-Type": "application/json"}
    response = await client.post("/api/v1/items", data=io.BytesIO(huge), headers=headers)
    assert response.status == 413
    assert response.content_type == "application/problem+json"
    assert "larger than" in (await response.json())["detail"]
    assert (await _count_items(db))[0] == 0


async def test_state_secret_is_refused_and_nothing_stored(
    client: Client, make_token: TokenFactory, db: Database
) -> None:
    editor = await make_token("editor")
    before = await _dump(db)
    secret = bid_candidates(secrecy="state_secret", title="绝密文件标题XYZ")
    response = await client.post("/api/v1/items", json=secret, headers=editor)
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["errors"]] == ["secrecy"]
    after = await _dump(db)
    assert after == before
    assert "绝密文件标题XYZ" not in after


async def test_state_secret_revision_is_refused(client: Client, make_token: TokenFactory) -> None:
    editor = await make_token("editor")
    item = await (await client.post("/api/v1/items", json=bid_candidates(), headers=editor)).json()
    response = await client.post(
        f"/api/v1/items/{item['id']}/revisions",
        json={"change_note": "x", "secrecy": "state_secret"},
        headers=editor,
    )
    assert response.status == 422


async def test_script_in_title_is_kept_as_text_and_body_is_sanitized(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor")
    item = bid_candidates(
        title="<script>alert('标题')</script>公示",
        body_html=(
            '<p onclick="steal()">正文<script>alert(1)</script></p>'
            '<img src="x.png" onerror="alert(2)"><a href="javascript:alert(3)">链接</a>'
            '<a href="https://example.org/x">公告</a><iframe src="https://evil"></iframe>'
            "<style>body{display:none}</style><table><tr><td>表格</td></tr></table>"
        ),
    )
    response = await client.post("/api/v1/items", json=item, headers=editor)
    assert response.status == 201
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["title"] == "<script>alert('标题')</script>公示"
    html = body["body_html"]
    for bad in ("onclick", "<script", "alert(1)", "onerror", "javascript:", "<iframe", "<style"):
        assert bad not in html, (bad, html)
    assert "<p>正文</p>" in html
    assert '<img src="x.png">' in html
    assert "<td>表格</td>" in html
    assert 'href="https://example.org/x"' in html


async def test_withheld_values_are_never_stored_or_returned(
    client: Client, make_token: TokenFactory, db: Database
) -> None:
    editor = await make_token("editor", holder="编辑")
    approver = await make_token("approver", holder="审核")
    item = bid_candidates(
        summary="内含商业秘密SECRET-SUMMARY",
        withheld=[
            {"field": "fields.candidates[0].project_lead_phone", "basis": "personal_privacy"},
            {"field": "summary", "basis": "trade_secret"},
        ],
    )
    created = await (await client.post("/api/v1/items", json=item, headers=editor)).json()
    await client.post(f"/api/v1/items/{created['id']}/approve", headers=approver)
    revision = {"change_note": "补充说明", "title": "更正后的标题"}
    await client.post(f"/api/v1/items/{created['id']}/revisions", json=revision, headers=editor)
    responses = [
        await client.get(f"/api/v1/items/{created['id']}", headers=editor),
        await client.get("/api/v1/items", headers=editor),
    ]
    texts = [await r.text() for r in responses] + [await _dump(db)]
    for text in texts:
        assert "13800000000" not in text
        assert "SECRET-SUMMARY" not in text
    item_json = await responses[0].json()
    assert item_json["summary"] == ""
    # The revision kept the withheld notes for the parts it did not resend.
    assert [w["field"] for w in item_json["withheld"]] == [
        "fields.candidates[0].project_lead_phone",
        "summary",
    ]


async def test_unknown_route_and_method_are_problems(client: Client) -> None:
    missing = await client.get("/api/v1/nothing")
    assert missing.status == 404
    assert missing.content_type == "application/problem+json"
    wrong = await client.delete("/api/v1/items")
    assert wrong.status == 405
    assert "Allow" in wrong.headers
