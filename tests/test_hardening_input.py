"""Bad input the probe found (issue 12): each answered with 422 and the field, never a 500, the
same on SQLite and PostgreSQL; and nothing stored. Text is stored in normal form C."""

from __future__ import annotations

import dataclasses
import json
import unicodedata
from typing import Any

import pytest
import sqlalchemy as sa

from dispatcher.errors import AccountError
from dispatcher.items import accounts
from dispatcher.rules.intake import check_item
from dispatcher.rules.rulebook import Rules, build_rules
from dispatcher.settings import load_settings
from dispatcher.storage.db import Database
from dispatcher.storage.models import items
from tests.helpers import CENTER, Client, TokenFactory, bid_candidates


async def post_raw(client: Client, headers: dict[str, str], body: str | bytes) -> tuple[int, Any]:
    response = await client.post(
        "/api/v1/items", data=body, headers={**headers, "Content-Type": "application/json"}
    )
    return response.status, await response.json()


def fields_of(body: Any) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


async def stored(db: Database) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(items))).scalar())


def with_text(key: str, raw: str) -> str:
    """The item as JSON text with `key` set to the JSON string literal `raw` (escapes kept)."""
    item = bid_candidates()
    item[key] = "PLACEHOLDER"
    return json.dumps(item, ensure_ascii=False).replace('"PLACEHOLDER"', f'"{raw}"')


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (with_text("title", "中标\\ud800公示"), "title", "unpaired surrogate"),
        (with_text("summary", "说明\\u0000后文"), "summary", "NUL"),
        (with_text("late_reason", "原因\\u0000"), "late_reason", "NUL"),
        (with_text("title", "公示\\u202e示公"), "title", "invisible"),
        (with_text("title", "公\\u200b示"), "title", "invisible"),
        (with_text("region", "９９０１００"), "region", "pattern"),
        (with_text("region", "٩٩٠١٠٠"), "region", "pattern"),
        (with_text("formed_on", "0001-01-01"), "formed_on", "2000"),
        (with_text("publish_at", "0001-01-01T00:00:00+14:00"), "publish_at", "calendar"),
        (with_text("publish_at", "9999-12-31T23:59:59-14:00"), "publish_at", "calendar"),
        (with_text("publish_at", "2099-01-01T09:00:00+08:00"), "publish_at", "a year ahead"),
        ("[" * 100_000 + "]" * 100_000, "(body)", "nested"),
        ('{"title": "a", "title": "b"}', "(body)", "appears twice"),
        ('{"keywords": [NaN]}', "(body)", "NaN"),
    ],
    ids=["surrogate", "nul-summary", "nul-late-reason", "rtl-override", "zero-width",
         "fullwidth-region", "arabic-indic-region", "year-1", "year-1-offset",
         "year-9999-offset", "scheduled-forever", "deep-nesting", "duplicate-key", "nan"],
)  # fmt: skip
async def test_bad_text_dates_and_json_are_refused_with_the_field(
    client: Client, make_token: TokenFactory, db: Database, body: str, field: str, says: str
) -> None:
    editor = await make_token("editor")
    status, problem = await post_raw(client, editor, body.encode("utf-8", "surrogatepass"))
    assert status == 422, problem
    assert field in fields_of(problem), problem
    assert says in json.dumps(problem, ensure_ascii=False), problem
    assert await stored(db) == 0


async def test_a_negative_amount_is_refused(client: Client, make_token: TokenFactory) -> None:
    editor = await make_token("editor")
    item = bid_candidates()
    item["fields"]["candidates"][0]["bid_price"] = "-12345678.00"
    status, problem = await post_raw(client, editor, json.dumps(item))
    assert status == 422 and "fields.candidates[0].bid_price" in fields_of(problem)
    assert "negative" in json.dumps(problem)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?domain=bid%00ding", "?domain"),
        ("?since=0001-01-01T00:00:00%2B14:00", "since"),
        ("?since=9999-12-31T23:59:59-14:00", "since"),  # past the calendar in UTC
        ("?cursor=99999999999999999999999", "cursor"),
    ],
    ids=["nul-domain", "since-year-1", "since-year-9999", "huge-cursor"],
)
async def test_bad_query_strings_are_refused(
    client: Client, make_token: TokenFactory, query: str, field: str
) -> None:
    editor = await make_token("editor")
    response = await client.get(f"/api/v1/items{query}", headers=editor)
    problem = await response.json()
    assert response.status == 422, problem
    assert field in fields_of(problem)


async def test_a_nul_in_a_withdrawal_reason_or_change_note_is_refused(
    client: Client, make_token: TokenFactory
) -> None:
    editor, approver = await make_token("editor", holder="编"), await make_token("approver")
    created = await client.post("/api/v1/items", json=bid_candidates(), headers=editor)
    item_id = (await created.json())["id"]
    await client.post(f"/api/v1/items/{item_id}/approve", headers=approver)
    for path, body, headers in (
        ("revisions", '{"change_note": "更正\\u0000"}', editor),
        ("withdraw", '{"reason": "撤回\\u0000"}', approver),
    ):
        response = await client.post(
            f"/api/v1/items/{item_id}/{path}", data=body,
            headers={**headers, "Content-Type": "application/json"},
        )  # fmt: skip
        problem = await response.json()
        assert response.status == 422 and "NUL" in json.dumps(problem), (path, problem)


async def test_text_is_stored_in_normal_form_c(client: Client, make_token: TokenFactory) -> None:
    editor = await make_token("editor")
    decomposed = unicodedata.normalize("NFD", "Café 中标候选人公示")
    created = await client.post("/api/v1/items", json=bid_candidates(title=decomposed),
                                headers=editor)  # fmt: skip
    body = await created.json()
    assert created.status == 201, body
    assert body["title"] == unicodedata.normalize("NFC", decomposed) != decomposed


@pytest.mark.parametrize("name", ["示范市\x1b[31m财政局", "示范市\u202e局政财", "示范\x00局"])
async def test_an_agency_name_with_control_characters_is_refused(db: Database, name: str) -> None:
    async with db.transaction() as conn:
        with pytest.raises(AccountError, match="--name"):
            await accounts.add_agency(conn, "11990100MB0000007G", name, "990100")


async def test_a_revoked_token_is_refused_at_once(
    client: Client, make_token: TokenFactory, db: Database
) -> None:
    editor = await make_token("editor", holder="张编辑")
    assert (await client.get("/api/v1/items", headers=editor)).status == 200
    async with db.connect() as conn:
        [listed] = await accounts.list_tokens(conn)
    assert (listed["holder"], listed["revoked_at"]) == ("张编辑", None)
    async with db.transaction() as conn:
        await accounts.revoke_token(conn, listed["id"])
    assert (await client.get("/api/v1/items", headers=editor)).status == 401
    async with db.transaction() as conn:
        with pytest.raises(AccountError, match="already revoked"):
            await accounts.revoke_token(conn, listed["id"])
        with pytest.raises(AccountError, match="no token 999"):
            await accounts.revoke_token(conn, 999)


def test_off_site_links_are_nofollow_and_remote_images_left_out(rules: Rules) -> None:
    body = (
        '<p><a href="//evil.example/login">登录</a> <a href="/items/1.html">原文</a></p>'
        '<img src="https://tracker.example/p.gif" alt="统计"><img src="/files/map.png" alt="图">'
        '<img src="https://img.example.gov.cn/parcel.png" alt="宗地图">'
    )
    allowed = dataclasses.replace(rules, image_hosts=frozenset({"img.example.gov.cn"}))
    cleaned = check_item(bid_candidates(body_html=body), allowed, CENTER).values["body_html"]
    assert '<a href="//evil.example/login" rel="noopener noreferrer nofollow">' in cleaned
    assert "tracker.example" not in cleaned and '<img alt="统计">' in cleaned
    assert '<img src="/files/map.png" alt="图">' in cleaned
    assert 'src="https://img.example.gov.cn/parcel.png"' in cleaned


def test_image_hosts_come_from_the_site_and_the_setting() -> None:
    env = {"GONGKAI_BASE_URL": "https://gk.example.gov.cn",
           "GONGKAI_IMAGE_HOSTS": "img.example.gov.cn, CDN.example.cn"}  # fmt: skip
    settings = load_settings(env=env)
    assert build_rules(settings).image_hosts == {
        "gk.example.gov.cn",
        "img.example.gov.cn",
        "cdn.example.cn",
    }


def test_an_image_host_is_matched_with_its_port(rules: Rules) -> None:
    """The probe's note: only host names were compared, so another port on an allowed host
    (another server, perhaps anyone's) passed."""
    hosts = "img.example.gov.cn,cdn.example.cn:8443"
    env = {"GONGKAI_BASE_URL": "http://127.0.0.1:8080", "GONGKAI_IMAGE_HOSTS": hosts}
    settings = load_settings(env=env)
    allowed = dataclasses.replace(rules, image_hosts=build_rules(settings).image_hosts)
    sources = {
        "http://127.0.0.1:8080/files/a.png": True,  # the site's own origin
        "http://127.0.0.1:9999/files/a.png": False,
        "https://img.example.gov.cn/b.png": True,
        "https://img.example.gov.cn:443/b.png": True,  # the scheme's own port
        "https://img.example.gov.cn:8443/b.png": False,
        "https://cdn.example.cn:8443/c.png": True,
        "https://cdn.example.cn/c.png": False,
        "https://img.example.gov.cn:99999/b.png": False,  # not a port
        "//img.example.gov.cn.evil.example/b.png": False,
    }
    for src, kept in sources.items():
        body = f'<img src="{src}" alt="图">'
        cleaned = check_item(bid_candidates(body_html=body), allowed, CENTER).values["body_html"]
        assert (f'src="{src}"' in cleaned) is kept, src
