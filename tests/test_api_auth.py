"""Who may do what: every role × own/other agency × endpoint, and the 401 cases."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import event

from dispatcher.storage.db import Database
from tests.helpers import CENTER, OTHER, TokenFactory, bid_candidates

Client = TestClient[Any, Any]
ROLES = ("editor", "approver", "auditor", "admin")

# endpoint -> (role that may use it on its own agency's item, status on success)
ENDPOINTS: dict[str, tuple[tuple[str, ...], int]] = {
    "submit": (("editor",), 201),
    "list": (ROLES, 200),
    "get": (ROLES, 200),
    "approve": (("approver",), 200),
    "revise": (("editor",), 201),
    "withdraw": (("approver",), 200),
}


async def _submit(client: Client, headers: dict[str, str]) -> Any:
    return await client.post("/api/v1/items", json=bid_candidates(), headers=headers)


async def _call(client: Client, endpoint: str, item_id: int, headers: dict[str, str]) -> Any:
    url = f"/api/v1/items/{item_id}"
    if endpoint == "submit":
        return await client.post("/api/v1/items", json=bid_candidates(), headers=headers)
    if endpoint == "list":
        return await client.get(f"/api/v1/items?agency={CENTER}", headers=headers)
    if endpoint == "get":
        return await client.get(url, headers=headers)
    if endpoint == "approve":
        return await client.post(url + "/approve", headers=headers)
    if endpoint == "revise":
        return await client.post(url + "/revisions", json={"change_note": "更正"}, headers=headers)
    return await client.post(url + "/withdraw", json={"reason": "撤回"}, headers=headers)


@pytest.mark.parametrize("own", [True, False], ids=["own-agency", "other-agency"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_authorization_matrix(
    client: Client, make_token: TokenFactory, endpoint: str, role: str, own: bool
) -> None:
    editor = await make_token("editor", CENTER, holder="提交人")
    created = await client.post("/api/v1/items", json=bid_candidates(), headers=editor)
    item_id = (await created.json())["id"]
    headers = await make_token(role, CENTER if own else OTHER, holder="操作人")
    response = await _call(client, endpoint, item_id, headers)
    allowed_roles, ok_status = ENDPOINTS[endpoint]
    # Another agency's item answers as a missing one does (404): its existence is not revealed;
    # a role that may not do this at all is 403 whatever the item.
    on_an_item = endpoint not in ("submit", "list")
    if role not in allowed_roles:
        expected = 403
    elif not own:
        expected = 404 if on_an_item else 403
    else:
        expected = ok_status
    assert response.status == expected, await response.text()
    if expected != ok_status:
        assert response.content_type == "application/problem+json"
        assert (await response.json())["status"] == expected
    if expected == 404:
        missing = await _call(client, endpoint, item_id + 1000, headers)
        assert (missing.status, (await missing.json())["detail"]) == (
            404,
            f"no item {item_id + 1000}",
        )  # the same answer, but for the id
        assert (await response.json())["detail"] == f"no item {item_id}"


async def test_other_agency_does_not_see_items_in_its_list(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor", CENTER)
    await client.post("/api/v1/items", json=bid_candidates(), headers=editor)
    outsider = await make_token("auditor", OTHER)
    body = await (await client.get("/api/v1/items", headers=outsider)).json()
    assert body["items"] == []


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer gk_notarealtoken", "Basic dXNlcjpwYXNz", "gk_notbearer", "Bearer  "],
)
async def test_without_a_valid_token_is_401(client: Client, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    calls = (("GET", "/api/v1/items"), ("POST", "/api/v1/items"),
             ("GET", "/api/v1/items/1"), ("POST", "/api/v1/items/1/approve"))  # fmt: skip
    for method, url in calls:
        response = await client.request(method, url, headers=headers, json=bid_candidates())
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.content_type == "application/problem+json"


async def test_approver_cannot_approve_own_submission(
    client: Client, make_token: TokenFactory
) -> None:
    editor = await make_token("editor", holder="王某")
    own_approver = await make_token("approver", holder="王某")
    created = await (
        await client.post("/api/v1/items", json=bid_candidates(), headers=editor)
    ).json()
    response = await client.post(f"/api/v1/items/{created['id']}/approve", headers=own_approver)
    assert response.status == 403
    assert "先审后发" in (await response.json())["detail"]
    other = await make_token("approver", holder="赵某")
    response = await client.post(f"/api/v1/items/{created['id']}/approve", headers=other)
    assert response.status == 200


async def test_who_publishes_rule(client: Client, make_token: TokenFactory) -> None:
    # The finance bureau cannot submit the trading centre's candidates notice ...
    finance = await make_token("editor", OTHER)
    response = await client.post("/api/v1/items", json=bid_candidates(), headers=finance)
    assert response.status == 403
    # ... nor name itself as implementer of it to pass the check (content is fine, it is
    # the agency's own), but it must name an implementing body at all.
    missing = bid_candidates(implementing_agency=None)
    response = await client.post("/api/v1/items", json=missing, headers=finance)
    assert response.status == 422
    assert [e["field"] for e in (await response.json())["errors"]] == ["implementing_agency"]


async def test_unknown_item_is_404_and_bad_transition_409(
    client: Client, make_token: TokenFactory
) -> None:
    approver = await make_token("approver", holder="审核")
    response = await client.get("/api/v1/items/999999", headers=approver)
    assert response.status == 404
    assert (await client.post("/api/v1/items/999999/approve", headers=approver)).status == 404
    editor = await make_token("editor", holder="编辑")
    created = await (
        await client.post("/api/v1/items", json=bid_candidates(), headers=editor)
    ).json()
    url = f"/api/v1/items/{created['id']}/approve"
    assert (await client.post(url, headers=approver)).status == 200
    second = await client.post(url, headers=approver)
    assert second.status == 409
    assert second.content_type == "application/problem+json"


async def test_each_request_looks_its_token_up_once(
    client: Client, make_token: TokenFactory, db: Database
) -> None:
    editor = await make_token("editor", holder="编辑")
    approver = await make_token("approver", holder="审核")
    lookups: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM tokens" in statement:
            lookups.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        created = await _submit(client, editor)
        assert created.status == 201
        item_id = (await created.json())["id"]
        assert len(lookups) == 1
        approved = await client.post(f"/api/v1/items/{item_id}/approve", headers=approver)
        assert approved.status == 200
        assert len(lookups) == 2
        assert (await client.get(f"/api/v1/items/{item_id}", headers=editor)).status == 200
        assert len(lookups) == 3
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
