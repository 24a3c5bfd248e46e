"""The demo items are valid, lawful and cover what the demo shows (it must not silently break)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from dispatcher.ops.demo import ANCHOR
from dispatcher.rules.catalogue import (
    Catalogue,
    validate_fields,
)
from dispatcher.rules.permissions import PUBLISHER_FIELDS
from tests.catalogue_kit import (
    DEMO_AGENCIES,
    DOMAINS,
    ITEM_KEYS,
    demo_items_json,
)

# --- demo items: the demo must not silently break ---

DEMO = demo_items_json()


@pytest.mark.parametrize("item", DEMO, ids=[f"{i['domain']}.{i['category']}" for i in DEMO])
def test_demo_item_is_valid(cat: Catalogue, item: dict[str, Any]) -> None:
    assert set(item) == ITEM_KEYS
    c = cat.category(item["domain"], item["category"])
    assert c is not None
    assert validate_fields(c, item["fields"]) == []
    assert item[PUBLISHER_FIELDS[c.publisher]] in DEMO_AGENCIES
    agencies = {item[key] for key in PUBLISHER_FIELDS.values()}
    assert agencies - {None} <= DEMO_AGENCIES
    if c.publisher == "author":  # 谁制作、谁公开: the drafting agency, no one else, is named
        assert item["approving_agency"] is None
    else:
        assert item["authoring_agency"] is None
    # Written as seen on ANCHOR (the demo moves every date to today): nothing formed later.
    assert dt.date(2026, 11, 1) <= dt.date.fromisoformat(item["formed_on"]) <= ANCHOR
    assert re.fullmatch(r"[0-9]{6}", item["region"])
    assert item["decision"] in (None, "administrative_permit", "administrative_penalty")
    assert item["secrecy"] == "none" and item["title"] and item["body_html"].startswith("<")
    for w in item["withheld"]:
        assert w["basis"] in cat.withholding_bases
        assert _resolve(item, w["field"]) not in (None, "")
        assert str(_resolve(item, w["field"])) not in item["body_html"]


def _resolve(item: dict[str, Any], path: str) -> Any:
    value: Any = item
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        value = value[int(part[1:-1])] if part.startswith("[") else value[part]
    return value


def test_demo_items_cover_what_the_demo_shows() -> None:
    assert 14 <= len(DEMO) <= 16
    for domain in DOMAINS:
        assert sum(i["domain"] == domain for i in DEMO) >= 2, domain
    by_code: dict[str, set[str]] = {}
    for i in DEMO:
        if i["project_code"]:
            by_code.setdefault(i["project_code"], set()).add(i["category"])
    # The banner's project: opened, its candidates now in their publicity period.
    assert by_code["E9901002026000018"] == {"bid_opening_record", "bid_candidates"}
    assert {"procurement_result", "procurement_contract"} <= by_code["Z9901002026000093"]
    categories = {i["category"] for i in DEMO}
    assert {"bid_notice", "bid_result", "transfer_notice", "procurement_intention"} <= categories
    assert sum(i["category"] == "blacklist" for i in DEMO) == 1
    assert any(i["decision"] == "administrative_penalty" for i in DEMO)
    assert any(i["withheld"] for i in DEMO)
    assert any(i["authoring_agency"] for i in DEMO)
    assert [i["publish_at"] for i in DEMO if i["publish_at"]] == ["2026-12-01T09:00:00+08:00"]


def _item(category: str) -> dict[str, Any]:
    return next(i for i in DEMO if i["category"] == category and i["domain"] != "mining")


def test_demo_blacklist_decision_cites_what_it_applies() -> None:
    item = _item("blacklist")
    basis, measures = item["fields"]["basis"], item["fields"]["measures"]
    # 骗租 public rental housing: fine up to 1000 yuan, return the flat, pay market rent, and no
    # new application for five years from the day it is returned.
    assert "《公共租赁住房管理办法》" in basis and "第三十六条" in basis
    assert "1000元" in measures and "按市场价格补缴租金" in measures
    assert "自退回公共租赁住房之日起五年内不得再次申请" in measures
    assert "自退回公共租赁住房之日起五年内不得再次申请" in item["body_html"]
    assert "97号" in basis  # the listing itself: the opinion's 黑名单


def test_demo_housing_policy_compares_like_with_like() -> None:
    item = _item("allocation_policy")
    for text in (item["fields"]["eligibility"], item["body_html"]):
        # A household's yearly disposable income per head against the city's, same year.
        assert "上年度家庭人均可支配收入低于本市上年度城镇居民人均可支配收入的60%" in text
        assert "月收入" not in text
    assert "同地段同类型住房市场租金" in item["fields"]["rent_standard"]
