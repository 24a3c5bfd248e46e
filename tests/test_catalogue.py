"""The catalogue file, its loader's error reporting, item field checks and the demo items."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from channels import REGISTRY
from dispatcher.rules.catalogue import (
    Catalogue,
    CatalogueError,
    format_catalogue,
    load_catalogue,
    validate_fields,
)

DOMAINS = {
    "housing": "住房保障",
    "land": "国有土地使用权出让",
    "mining": "矿业权出让",
    "procurement": "政府采购",
    "state_assets": "国有产权交易",
    "bidding": "工程建设项目招标投标",
}
DEMO_AGENCIES = {
    "11990100MB0000001A",
    "11990100MB0000002B",
    "11990100MB0000003C",
    "12990100MB0000004D",
    "11990100MB0000005E",
}
ITEM_KEYS = {
    "domain", "category", "title", "summary", "body_html", "formed_on", "decision",
    "approving_agency", "implementing_agency", "project_code", "region", "document_number",
    "keywords", "fields", "withheld", "secrecy", "channels", "publish_at", "late_reason",
}  # fmt: skip
TODAY = dt.date(2026, 11, 23)


def _packaged_json() -> dict[str, Any]:
    packaged = resources.files("dispatcher.rules").joinpath("catalogue.json")
    text = packaged.read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _demo_items() -> list[dict[str, Any]]:
    text = resources.files("dispatcher.ops").joinpath("demo_items.json").read_text(encoding="utf-8")
    items: list[dict[str, Any]] = json.loads(text)
    return items


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue()


# --- the packaged catalogue ---


def test_packaged_catalogue_loads_the_same_each_time(cat: Catalogue) -> None:
    assert load_catalogue() == cat
    assert load_catalogue() is not cat  # no module global: each process loads its own


def test_six_domains_with_chinese_names(cat: Catalogue) -> None:
    assert {d.key: d.name for d in cat.domains.values()} == DOMAINS
    assert list(cat.domains) == list(DOMAINS)


def test_bid_candidates_has_the_ten_fields_the_opinion_names(cat: Catalogue) -> None:
    c = cat.category("bidding", "bid_candidates")
    assert c is not None and c.publisher == "implementer"
    fields = {f.key: f for f in c.fields}
    candidates = fields["candidates"]
    assert candidates.type == "table" and candidates.required
    columns = {col.key: col for col in candidates.columns}
    opinion = {"rank", "name", "bid_price", "duration", "evaluation", "project_lead",
               "lead_achievements", "certificates", "qualifications"}  # fmt: skip
    assert opinion <= set(columns)
    assert "objection_channel" in fields
    assert columns["rank"].type == "integer" and columns["rank"].required
    assert columns["bid_price"].type == "decimal"
    assert "project_lead_phone" in columns and not columns["project_lead_phone"].required


def test_bid_notice_has_the_five_parts_the_opinion_names(cat: Catalogue) -> None:
    c = cat.category("bidding", "bid_notice")
    assert c is not None
    names = {f.name for f in c.fields}
    assert {
        "招标条件",
        "项目概况与招标范围",
        "投标人资格要求",
        "招标文件获取",
        "投标文件递交",
    } <= names


@pytest.mark.parametrize(
    ("domain", "key", "publisher"),
    [
        ("housing", "annual_plan", "approver"),
        ("housing", "allocation_result", "implementer"),
        ("land", "supply_plan", "approver"),
        ("land", "deal_announcement", "implementer"),
        ("mining", "approval_result", "approver"),
        ("mining", "project_info", "implementer"),
        ("procurement", "procurement_result", "implementer"),
        ("procurement", "complaint_decision", "approver"),
        ("procurement", "inspection_decision", "approver"),
        ("procurement", "agency_assessment", "approver"),
        ("procurement", "violation_record", "approver"),
        ("state_assets", "decision_approval", "approver"),
        ("state_assets", "deal_price", "implementer"),
        ("bidding", "approval_filing", "approver"),
        ("bidding", "bid_result", "implementer"),
        ("bidding", "contract_performance", "implementer"),
        ("bidding", "blacklist", "approver"),
    ],
)
def test_who_publishes(cat: Catalogue, domain: str, key: str, publisher: str) -> None:
    c = cat.category(domain, key)
    assert c is not None and c.publisher == publisher


@pytest.mark.parametrize(
    ("domain", "order"),
    [
        ("bidding", ["bid_notice", "bid_candidates", "bid_result", "contract_performance"]),
        ("procurement", ["project_notice", "procurement_documents", "procurement_result",
                         "procurement_contract"]),
        ("land", ["supply_plan", "transfer_notice", "deal_announcement", "supply_result"]),
        ("state_assets", ["decision_approval", "project_info", "deal_price"]),
    ],
)  # fmt: skip
def test_categories_follow_the_process_order(cat: Catalogue, domain: str, order: list[str]) -> None:
    keys = list(cat.domains[domain].categories)
    assert [k for k in keys if k in order] == order
    stages = [c.stage for c in cat.domains[domain].categories.values()]
    assert stages == sorted(stages)


def test_every_category_has_sane_deadline_channels_and_description(cat: Catalogue) -> None:
    everything = [c for d in cat.domains.values() for c in d.categories.values()]
    everything += list(cat.cross_domain.values())
    for c in everything:
        assert 1 <= c.deadline_days <= 20, c.key
        assert {"website", "feeds"} <= set(c.default_channels) <= set(REGISTRY), c.key
        assert c.description, c.key
    assert cat.category("procurement", "violation_record").deadline_days == 7  # type: ignore[union-attr]


def test_blacklist_is_valid_under_every_domain_and_nowhere_else(cat: Catalogue) -> None:
    for domain in DOMAINS:
        c = cat.category(domain, "blacklist")
        assert c is not None and c.domain is None and c.name == "黑名单"
    assert cat.category("transport", "blacklist") is None
    assert cat.category("land", "bid_candidates") is None
    assert cat.category("bidding", "bid_candidates") is not None


def test_withholding_bases(cat: Catalogue) -> None:
    assert cat.withholding_bases["trade_secret"] == "商业秘密"
    assert cat.withholding_bases["personal_privacy"] == "个人隐私"
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", k) for k in cat.withholding_bases)


def test_to_json_round_trips_and_has_the_api_shape(cat: Catalogue) -> None:
    doc = cat.to_json()
    assert json.loads(json.dumps(doc, ensure_ascii=False)) == doc
    assert doc["version"] == 1
    assert [d["key"] for d in doc["domains"]] == list(DOMAINS)
    bidding = next(d for d in doc["domains"] if d["key"] == "bidding")
    bc = next(c for c in bidding["categories"] if c["key"] == "bid_candidates")
    assert bc["deadline"] == {"working_days": 20, "administrative_decisions": 7}
    assert bc["publisher"] == "implementer"
    table = next(f for f in bc["fields"] if f["key"] == "candidates")
    assert {"key": "rank", "name": "排序", "type": "integer", "required": True, "columns": []} in (
        table["columns"]
    )
    assert [c["key"] for c in doc["cross_domain"]] == ["blacklist"]
    assert {"key": "trade_secret", "name": "商业秘密"} in doc["withholding_bases"]


def test_format_catalogue_lists_everything(cat: Catalogue) -> None:
    text = format_catalogue(cat)
    for key, name in DOMAINS.items():
        assert key in text and name in text
    assert "bid_candidates  中标候选人  实施主体公开  20个工作日" in text
    assert "approval_result  审批结果信息  审批部门公开  7个工作日" in text
    assert "提出异议的渠道和方式" in text and "blacklist" in text and "个人隐私" in text


# --- broken catalogue files ---

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """A mutation setting a dotted path (integers index lists), e.g. 'domains.0.key'."""

    def apply(data: dict[str, Any]) -> None:
        *head, last = (int(p) if p.isdigit() else p for p in path.split("."))
        target: Any = data
        for p in head:
            target = target[p]
        target[last] = value

    return apply


def _first_table(data: dict[str, Any]) -> dict[str, Any]:
    cats = data["domains"][0]["categories"]
    return next(f for c in cats for f in c["fields"] if f["type"] == "table")


BROKEN: list[tuple[str, Mutation, str]] = [
    ("duplicate domain key", _set("domains.1.key", "housing"),
     "$.domains[1].key: duplicate key 'housing'"),
    ("duplicate category key", _set("domains.0.categories.1.key", "planning_scheme"),
     "$.domains[0].categories[1].key: duplicate key 'planning_scheme'"),
    ("category shadows cross-domain", _set("domains.2.categories.0.key", "blacklist"),
     "$.domains[2].categories[0].key: key 'blacklist' is also a cross-domain category"),
    ("duplicate field key", _set("domains.0.categories.0.fields.1.key", "plan_period"),
     "$.domains[0].categories[0].fields[1].key: duplicate key 'plan_period'"),
    ("deadline 0", _set("domains.0.categories.0.deadline_days", 0),
     "$.domains[0].categories[0].deadline_days: Input should be greater than or equal to 1"),
    ("deadline 21", _set("cross_domain.0.deadline_days", 21),
     "$.cross_domain[0].deadline_days: Input should be less than or equal to 20"),
    ("deadline as string", _set("domains.0.categories.0.deadline_days", "20"),
     "$.domains[0].categories[0].deadline_days: Input should be a valid integer"),
    ("no website", _set("domains.3.categories.0.default_channels", ["feeds", "wechat"]),
     "$.domains[3].categories[0].default_channels: must include 'website'"),
    ("unknown channel", _set("domains.0.categories.0.default_channels", ["website", "fax"]),
     "$.domains[0].categories[0].default_channels[1]: unknown channel 'fax'"),
    ("unknown field type", _set("domains.0.categories.0.fields.0.type", "money"),
     "$.domains[0].categories[0].fields[0].type: Input should be"),
    ("table column of type table",
     lambda d: _first_table(d)["columns"][0].update(type="table"),
     ".columns[0].type: a table column must be a scalar type"),
    ("table without columns", lambda d: _first_table(d).update(columns=[]),
     ".columns: a table field needs at least one column"),
    ("columns on a scalar", _set("domains.0.categories.0.fields.0.columns",
                                 [{"key": "x", "name": "x", "type": "string"}]),
     "$.domains[0].categories[0].fields[0].columns: only a table field has columns"),
    ("extra key", _set("domains.0.colour", "red"),
     "$.domains[0].colour: Extra inputs are not permitted"),
    ("bad key", _set("domains.5.categories.1.key", "BidNotice"),
     "$.domains[5].categories[1].key: String should match pattern"),
    ("bad publisher", _set("domains.0.categories.0.publisher", "publisher"),
     "$.domains[0].categories[0].publisher: Input should be 'approver' or 'implementer'"),
    ("unknown version", _set("version", 2), "$.version: Input should be 1"),
    ("bad withholding key", _set("withholding_bases.Trade Secret", "商业秘密"),
     "$.withholding_bases.Trade Secret.[key]: String should match pattern"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "expected"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_broken_catalogue_is_refused_with_a_path(
    tmp_path: Path, mutate: Mutation, expected: str
) -> None:
    data = copy.deepcopy(_packaged_json())
    mutate(data)
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(CatalogueError) as info:
        load_catalogue(path)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"version": 1, "version": 1}', "$: duplicate JSON object key 'version'"),
        ('{"version": 1,', "$: invalid JSON at line 1"),
        ("[]", "$: Input should be an object"),
        ('{"version": 1}', "$.withholding_bases: Field required"),
    ],
)
def test_unparsable_catalogue_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogueError, match=re.escape(expected)):
        load_catalogue(str(path))


def test_missing_catalogue_file_is_a_catalogue_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=re.escape("nope.json")):
        load_catalogue(tmp_path / "nope.json")


def test_categories_are_ordered_by_stage_not_file_order(tmp_path: Path) -> None:
    data = _packaged_json()
    bidding = data["domains"][5]["categories"]
    bidding.reverse()
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    keys = list(load_catalogue(path).domains["bidding"].categories)
    assert keys.index("bid_notice") < keys.index("bid_candidates") < keys.index("bid_result")


# --- item fields ---

ROW = {"rank": 1, "name": "某某建设集团有限公司", "bid_price": "12345678.00"}


def _cands(**row: Any) -> dict[str, Any]:
    return {"candidates": [ROW | row]}


FIELD_CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("unknown field", "bid_result", {"winner": "甲公司", "bogus": 1},
     "fields.bogus", "unknown field"),
    ("missing required", "bid_result", {"winning_price": "1.00"}, "fields.winner", "required"),
    ("null required", "bid_result", {"winner": None}, "fields.winner", "required"),
    ("missing required column", "bid_candidates", {"candidates": [{"rank": 1}]},
     "fields.candidates[0].name", "required"),
    ("empty required table", "bid_candidates", {"candidates": []},
     "fields.candidates", "at least one"),
    ("bool as integer", "bid_candidates", _cands(rank=True),
     "fields.candidates[0].rank", "integer"),
    ("string as integer", "bid_candidates", _cands(rank="1"),
     "fields.candidates[0].rank", "integer"),
    ("float decimal", "bid_candidates", _cands(bid_price=1234.5),
     "fields.candidates[0].bid_price", "not a number"),
    ("int decimal", "bid_result", {"winner": "甲", "winning_price": 100},
     "fields.winning_price", "not a number"),
    ("grouped decimal", "bid_candidates", _cands(bid_price="12,345.00"),
     "fields.candidates[0].bid_price", "decimal string"),
    ("fullwidth decimal", "bid_candidates", _cands(bid_price="１２３"),
     "fields.candidates[0].bid_price", "decimal string"),
    ("slash date", "bid_result", {"winner": "甲", "award_date": "2026/11/20"},
     "fields.award_date", "YYYY-MM-DD"),
    ("short date", "bid_result", {"winner": "甲", "award_date": "2026-1-2"},
     "fields.award_date", "YYYY-MM-DD"),
    ("impossible date", "bid_result", {"winner": "甲", "award_date": "2026-02-30"},
     "fields.award_date", "not a valid calendar date"),
    ("newline in string", "bid_result", {"winner": "甲\n乙"}, "fields.winner", "single line"),
    ("long string", "bid_result", {"winner": "甲" * 501}, "fields.winner", "at most 500"),
    ("control char in text", "bid_candidates", _cands() | {"objection_channel": "a\x07b"},
     "fields.objection_channel", "U+0007"),
    ("carriage return in text", "bid_candidates", _cands() | {"objection_channel": "a\r\nb"},
     "fields.objection_channel", "U+000D"),
    ("long text", "bid_candidates", _cands() | {"objection_channel": "x" * 20001},
     "fields.objection_channel", "at most 20000"),
    ("row unknown column", "bid_candidates", _cands(phone_no="138"),
     "fields.candidates[0].phone_no", "unknown field"),
    ("non-list table", "bid_candidates", {"candidates": ROW}, "fields.candidates", "list"),
    ("row not an object", "bid_candidates", {"candidates": [ROW, "乙公司"]},
     "fields.candidates[1]", "object"),
    ("too many rows", "bid_candidates", {"candidates": [ROW] * 501},
     "fields.candidates", "at most 500 rows"),
    ("bad boolean", "rural_renovation_results",
     {"results": [{"name": "张某", "passed_acceptance": "yes"}]},
     "fields.results[0].passed_acceptance", "true or false"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("category", "fields", "path", "message"),
    [c[1:] for c in FIELD_CASES],
    ids=[c[0] for c in FIELD_CASES],
)
def test_validate_fields_reports_the_exact_path(
    cat: Catalogue, category: str, fields: dict[str, Any], path: str, message: str
) -> None:
    domain = "housing" if category.startswith("rural") else "bidding"
    c = cat.category(domain, category)
    assert c is not None
    problems = validate_fields(c, fields)
    assert [p for p, _ in problems] == [path]
    assert message in problems[0][1]


def test_validate_fields_accepts_good_values(cat: Catalogue) -> None:
    c = cat.category("bidding", "bid_candidates")
    assert c is not None
    good = {
        "candidates": [ROW | {"bid_price": "-0.5", "duration": "90日历天"}, ROW | {"rank": 2}],
        "objection_channel": "书面提出：\n\t联系电话0990-12345678",
        "publicity_start": "2026-11-17",
        "publicity_end": None,
    }
    assert validate_fields(c, good) == []
    assert validate_fields(c, "not an object") == [("fields", "must be an object")]  # type: ignore[arg-type]


# --- demo items: the demo must not silently break ---

DEMO = _demo_items()


@pytest.mark.parametrize("item", DEMO, ids=[f"{i['domain']}.{i['category']}" for i in DEMO])
def test_demo_item_is_valid(cat: Catalogue, item: dict[str, Any]) -> None:
    assert set(item) == ITEM_KEYS
    c = cat.category(item["domain"], item["category"])
    assert c is not None
    assert validate_fields(c, item["fields"]) == []
    own = item["approving_agency"] if c.publisher == "approver" else item["implementing_agency"]
    assert own in DEMO_AGENCIES
    assert {item["approving_agency"], item["implementing_agency"]} - {None} <= DEMO_AGENCIES
    assert dt.date(2026, 11, 1) <= dt.date.fromisoformat(item["formed_on"]) <= TODAY
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
    assert 12 <= len(DEMO) <= 14
    for domain in DOMAINS:
        assert sum(i["domain"] == domain for i in DEMO) >= 2, domain
    by_code: dict[str, set[str]] = {}
    for i in DEMO:
        if i["project_code"]:
            by_code.setdefault(i["project_code"], set()).add(i["category"])
    assert {"bid_notice", "bid_candidates", "bid_result"} in by_code.values()
    assert any({"project_notice", "procurement_result"} <= cats for cats in by_code.values())
    assert sum(i["category"] == "blacklist" for i in DEMO) == 1
    assert any(i["decision"] == "administrative_penalty" for i in DEMO)
    assert any(i["withheld"] for i in DEMO)
    assert [i["publish_at"] for i in DEMO if i["publish_at"]] == ["2026-12-01T09:00:00+08:00"]
