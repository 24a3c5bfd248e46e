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
from dispatcher.ops.demo import ANCHOR
from dispatcher.rules.catalogue import (
    Catalogue,
    CatalogueError,
    Category,
    format_catalogue,
    load_catalogue,
    validate_fields,
)
from dispatcher.rules.permissions import PUBLISHER_FIELDS

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
    "approving_agency", "implementing_agency", "authoring_agency", "project_code", "region",
    "document_number", "keywords", "fields", "withheld", "secrecy", "channels", "publish_at",
    "late_reason",
}  # fmt: skip
GENERAL_BASIS = "《中华人民共和国政府信息公开条例》第二十六条"
DECISIONS_BASIS = "《国务院办公厅关于推进公共资源配置领域政府信息公开的意见》（国办发〔2017〕97号）"


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
    assert columns["project_lead_phone"].withhold == "personal_privacy"
    withheld = {col.key for col in candidates.columns if col.withhold}
    assert withheld == {"project_lead_phone"}


def test_bid_notice_has_the_parts_the_opinion_names(cat: Catalogue) -> None:
    c = cat.category("bidding", "bid_notice")
    assert c is not None
    names = {f.name for f in c.fields}
    assert {
        "招标条件",
        "招标人",
        "招标人联系方式",
        "招标代理机构",
        "代理机构联系方式",
        "项目概况与招标范围",
        "质量要求",
        "投标人资格要求",
        "招标文件获取",
        "投标文件递交",
        "投标截止时间",
    } <= names


@pytest.mark.parametrize(
    ("domain", "key", "fields"),
    [
        ("bidding", "prequalification_result", {"review_method": "string", "results": "table"}),
        ("bidding", "bid_opening_record", {"opening_date": "date*", "opening_place": "string",
                                           "bids": "table*"}),
        ("procurement", "procurement_intention", {"project_name": "string*", "requirements": "text",
                                                  "budget_amount": "decimal",
                                                  "planned_start": "date*"}),
        ("procurement", "performance_acceptance", {"accepted_on": "date", "conclusion": "text"}),
        ("mining", "transfer_result", {"right_name": "string", "winner": "string*",
                                       "deal_price": "decimal*", "publicity_start": "date",
                                       "publicity_end": "date"}),
        ("mining", "approval_result", {"right_name": "string", "right_holder": "string*",
                                       "licence_no": "string", "mineral": "string",
                                       "valid_from": "date", "valid_until": "date"}),
        ("land", "transfer_notice", {"transferor": "string", "bidding_start": "date*",
                                     "bidding_place": "string", "document_access": "text",
                                     "application_deadline": "date"}),
    ],
)  # fmt: skip
def test_the_categories_and_fields_the_opinion_names(
    cat: Catalogue, domain: str, key: str, fields: dict[str, str]
) -> None:
    c = cat.category(domain, key)
    assert c is not None and c.description
    found = {f.key: f.type + ("*" if f.required else "") for f in c.fields}
    assert {k: found.get(k) for k in fields} == fields


def test_the_opening_record_lists_bidders_and_their_prices(cat: Catalogue) -> None:
    c = cat.category("bidding", "bid_opening_record")
    assert c is not None
    bids = c.field("bids")
    assert bids is not None and bids.type == "table"
    columns = {col.key: (col.name, col.type) for col in bids.columns}
    assert columns["bidder"] == ("投标人", "string")
    assert columns["bid_price"] == ("投标报价（元）", "decimal")


@pytest.mark.parametrize(
    ("domain", "key", "publisher"),
    [
        # 谁制作、谁公开: policies, plans and supervisory decisions.
        ("housing", "planning_scheme", "author"),
        ("housing", "annual_plan", "author"),
        ("housing", "rural_renovation_policy", "author"),
        ("housing", "allocation_policy", "author"),
        ("land", "supply_plan", "author"),
        ("procurement", "complaint_decision", "author"),
        ("procurement", "inspection_decision", "author"),
        ("procurement", "agency_assessment", "author"),
        # 谁实施、谁公开.
        ("housing", "allocation_result", "implementer"),
        ("land", "deal_announcement", "implementer"),
        ("mining", "transfer_result", "implementer"),
        ("mining", "project_info", "implementer"),
        ("procurement", "procurement_intention", "implementer"),
        ("procurement", "procurement_result", "implementer"),
        ("procurement", "performance_acceptance", "implementer"),
        ("state_assets", "deal_price", "implementer"),
        ("bidding", "bid_opening_record", "implementer"),
        ("bidding", "bid_result", "implementer"),
        ("bidding", "contract_performance", "implementer"),
        # 谁批准、谁公开.
        ("mining", "approval_result", "approver"),
        ("procurement", "violation_record", "approver"),
        ("state_assets", "decision_approval", "approver"),
        ("bidding", "approval_filing", "approver"),
        ("bidding", "blacklist", "approver"),
    ],
)
def test_who_publishes(cat: Catalogue, domain: str, key: str, publisher: str) -> None:
    c = cat.category(domain, key)
    assert c is not None and c.publisher == publisher


@pytest.mark.parametrize(
    ("domain", "order"),
    [
        ("bidding", ["bid_notice", "prequalification_result", "bid_opening_record",
                     "bid_candidates", "bid_result", "contract_performance"]),
        ("procurement", ["budget", "procurement_intention", "project_notice",
                         "procurement_documents", "procurement_result", "procurement_contract",
                         "performance_acceptance"]),
        ("land", ["supply_plan", "transfer_notice", "deal_announcement", "supply_result"]),
        ("mining", ["transfer_notice", "transfer_result", "approval_result", "project_info"]),
        ("state_assets", ["decision_approval", "project_info", "deal_price"]),
    ],
)  # fmt: skip
def test_categories_follow_the_process_order(cat: Catalogue, domain: str, order: list[str]) -> None:
    keys = list(cat.domains[domain].categories)
    assert [k for k in keys if k in order] == order


def test_stages_are_numbered_one_to_n_in_file_order() -> None:
    data = _packaged_json()
    for d in data["domains"]:
        stages = [c["stage"] for c in d["categories"]]
        assert stages == list(range(1, len(stages) + 1)), d["key"]


def _everything(cat: Catalogue) -> list[Category]:
    found = [c for d in cat.domains.values() for c in d.categories.values()]
    return found + list(cat.cross_domain.values())


def test_every_category_states_its_time_rule_with_a_citation(cat: Catalogue) -> None:
    for c in _everything(cat):
        limit = c.time_limit
        assert limit.basis.strip().startswith("《"), c.key
        assert 1 <= limit.count <= 30, c.key
        if limit.kind == "deadline":
            assert limit.start.strip() and not limit.before, c.key
        else:
            event = c.field(limit.before)
            assert event is not None and event.type == "date" and event.required, c.key
            assert limit.unit == "days" and not limit.start, c.key
        assert {"website", "feeds"} <= set(c.default_channels) <= set(REGISTRY), c.key
        assert c.description, c.key


def test_the_general_rule_is_the_information_disclosure_regulation(cat: Catalogue) -> None:
    general = [c for c in _everything(cat) if c.time_limit.basis == GENERAL_BASIS]
    assert len(general) > 20
    for c in general:
        assert (c.time_limit.kind, c.time_limit.count, c.time_limit.unit) == (
            "deadline", 20, "working_days",
        ), c.key  # fmt: skip
        assert c.time_limit.start == "政府信息形成或者变更之日"


@pytest.mark.parametrize(
    ("domain", "key", "rule", "basis"),
    [
        ("procurement", "procurement_result",
         ("deadline", 2, "working_days", "中标、成交供应商确定之日"),
         "《中华人民共和国政府采购法实施条例》第四十三条"),
        ("procurement", "procurement_documents",
         ("deadline", 2, "working_days", "中标、成交供应商确定之日"),
         "《中华人民共和国政府采购法实施条例》第四十三条"),
        ("procurement", "procurement_contract",
         ("deadline", 2, "working_days", "政府采购合同签订之日"),
         "《中华人民共和国政府采购法实施条例》第五十条"),
        ("bidding", "bid_candidates", ("deadline", 3, "days", "收到评标报告之日"),
         "《中华人民共和国招标投标法实施条例》第五十四条"),
        ("bidding", "bid_notice", ("lead", 20, "days", "bid_deadline"),
         "《中华人民共和国招标投标法》第二十四条"),
        ("land", "transfer_notice", ("lead", 20, "days", "bidding_start"),
         "《招标拍卖挂牌出让国有建设用地使用权规定》（国土资源部令第39号）第十条"),
        ("procurement", "procurement_intention", ("lead", 30, "days", "planned_start"),
         "《财政部关于开展政府采购意向公开工作的通知》（财库〔2020〕10号）"),
        ("mining", "approval_result", ("deadline", 7, "working_days", "决定作出之日"),
         DECISIONS_BASIS),
        ("procurement", "violation_record", ("deadline", 7, "working_days", "决定作出之日"),
         DECISIONS_BASIS),
        ("housing", "blacklist", ("deadline", 7, "working_days", "决定作出之日"), DECISIONS_BASIS),
    ],
)  # fmt: skip
def test_the_rules_a_law_sets(
    cat: Catalogue, domain: str, key: str, rule: tuple[str, int, str, str], basis: str
) -> None:
    c = cat.category(domain, key)
    assert c is not None
    limit = c.time_limit
    assert (limit.kind, limit.count, limit.unit, limit.start or limit.before) == rule
    assert limit.basis == basis


@pytest.mark.parametrize(
    ("domain", "key", "period", "basis"),
    [
        ("bidding", "bid_candidates", (3, "days", "publicity_start", "publicity_end"),
         "《中华人民共和国招标投标法实施条例》第五十四条"),
        ("state_assets", "project_info", (20, "working_days", "listing_start", "listing_end"),
         "《企业国有资产交易监督管理办法》（国资委、财政部令第32号）第十三条"),
    ],
)  # fmt: skip
def test_minimum_publicity_periods(
    cat: Catalogue, domain: str, key: str, period: tuple[int, str, str, str], basis: str
) -> None:
    c = cat.category(domain, key)
    assert c is not None and c.min_publicity is not None
    p = c.min_publicity
    assert (p.count, p.unit, p.start, p.end) == period and p.basis == basis
    for end in (p.start, p.end):
        spec = c.field(end)
        assert spec is not None and spec.type == "date" and spec.required, end
    others = [c.key for c in _everything(cat) if c.min_publicity is not None]
    assert sorted(others) == ["bid_candidates", "project_info"]


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
    assert doc["version"] == 2
    assert [d["key"] for d in doc["domains"]] == list(DOMAINS)
    bidding = next(d for d in doc["domains"] if d["key"] == "bidding")
    bc = next(c for c in bidding["categories"] if c["key"] == "bid_candidates")
    basis = "《中华人民共和国招标投标法实施条例》第五十四条"
    assert bc["deadline"] == {
        "kind": "deadline", "count": 3, "unit": "days", "from": "收到评标报告之日",
        "basis": basis, "text": "自收到评标报告之日起3日内",
        "administrative_decisions": {
            "kind": "deadline", "count": 7, "unit": "working_days",
            "from": "行政许可、行政处罚决定作出之日", "basis": DECISIONS_BASIS,
        },
    }  # fmt: skip
    assert bc["min_publicity"] == {"count": 3, "unit": "days", "start": "publicity_start",
                                   "end": "publicity_end", "basis": basis}  # fmt: skip
    assert bc["publisher"] == "implementer"
    table = next(f for f in bc["fields"] if f["key"] == "candidates")
    assert {"key": "rank", "name": "排序", "type": "integer", "required": True, "columns": []} in (
        table["columns"]
    )
    phone = next(col for col in table["columns"] if col["key"] == "project_lead_phone")
    assert phone["withhold"] == "personal_privacy"
    notice = next(c for c in bidding["categories"] if c["key"] == "bid_notice")
    assert notice["deadline"]["kind"] == "lead" and notice["deadline"]["before"] == "bid_deadline"
    assert notice["deadline"]["text"] == "在投标截止时间前至少20日"
    assert notice["min_publicity"] is None
    assert [c["key"] for c in doc["cross_domain"]] == ["blacklist"]
    assert {"key": "trade_secret", "name": "商业秘密"} in doc["withholding_bases"]


def test_format_catalogue_lists_everything(cat: Catalogue) -> None:
    text = format_catalogue(cat)
    for key, name in DOMAINS.items():
        assert key in text and name in text
    assert "5. bid_candidates  中标候选人  实施主体公开" in text
    bid = "《中华人民共和国招标投标法实施条例》第五十四条"
    assert f"时限: 自收到评标报告之日起3日内（{bid}）" in text
    assert f"公示期: 不少于3日（{bid}）" in text
    land = "《招标拍卖挂牌出让国有建设用地使用权规定》（国土资源部令第39号）第十条"
    assert f"时限: 在招标拍卖挂牌开始时间前至少20日（{land}）" in text
    assert "approval_result  审批结果信息  审批部门公开" in text
    assert "allocation_policy  分配政策  制作机关公开" in text
    assert f"时限: 自决定作出之日起7个工作日内（{DECISIONS_BASIS}）" in text
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


def _del(path: str) -> Mutation:
    """A mutation deleting a dotted path, e.g. 'domains.0.categories.0.time_limit.from'."""

    def apply(data: dict[str, Any]) -> None:
        *head, last = (int(p) if p.isdigit() else p for p in path.split("."))
        target: Any = data
        for p in head:
            target = target[p]
        del target[last]

    return apply


HOUSING_PLAN = "domains.0.categories.0"  # a deadline: the general rule
LAND_NOTICE = "domains.1.categories.1"  # a lead time before bidding_start
BID_NOTICE = "domains.5.categories.1"  # a lead time before bid_deadline
CANDIDATES = "domains.5.categories.4"  # a deadline in days with a minimum publicity period


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
    ("time limit of 0", _set(f"{HOUSING_PLAN}.time_limit.count", 0),
     "$.domains[0].categories[0].time_limit.count: Input should be greater than or equal to 1"),
    ("time limit over a year", _set("cross_domain.0.time_limit.count", 367),
     "$.cross_domain[0].time_limit.count: Input should be less than or equal to 366"),
    ("time limit as string", _set(f"{HOUSING_PLAN}.time_limit.count", "20"),
     "$.domains[0].categories[0].time_limit.count: Input should be a valid integer"),
    ("unknown unit", _set(f"{HOUSING_PLAN}.time_limit.unit", "weeks"),
     "$.domains[0].categories[0].time_limit.unit: Input should be 'working_days' or 'days'"),
    ("unknown kind", _set(f"{HOUSING_PLAN}.time_limit.kind", "window"),
     "$.domains[0].categories[0].time_limit.kind: Input should be 'deadline' or 'lead'"),
    ("no time limit", _del(f"{HOUSING_PLAN}.time_limit"),
     "$.domains[0].categories[0].time_limit: Field required"),
    ("no basis", _del(f"{HOUSING_PLAN}.time_limit.basis"),
     "$.domains[0].categories[0].time_limit.basis: Field required"),
    ("empty basis", _set(f"{HOUSING_PLAN}.time_limit.basis", ""),
     "$.domains[0].categories[0].time_limit.basis: String should have at least 1 character"),
    ("deadline without from", _del(f"{HOUSING_PLAN}.time_limit.from"),
     "$.domains[0].categories[0].time_limit.from: say what starts the clock"),
    ("deadline from blank", _set(f"{HOUSING_PLAN}.time_limit.from", "  "),
     "$.domains[0].categories[0].time_limit.from: say what starts the clock"),
    ("deadline naming an event", _set(f"{HOUSING_PLAN}.time_limit.before", "plan_period"),
     "$.domains[0].categories[0].time_limit.before: only a lead time names an event"),
    ("lead before a non-date field", _set(f"{BID_NOTICE}.time_limit.before", "tenderer"),
     "$.domains[5].categories[1].time_limit.before: must name a required date field"),
    ("lead before an optional date", _set(f"{LAND_NOTICE}.time_limit.before",
                                          "application_deadline"),
     "$.domains[1].categories[1].time_limit.before: must name a required date field"),
    ("lead before an unknown field", _set(f"{LAND_NOTICE}.time_limit.before", "auction_date"),
     "$.domains[1].categories[1].time_limit.before: must name a required date field"),
    ("lead before nothing", _del(f"{LAND_NOTICE}.time_limit.before"),
     "$.domains[1].categories[1].time_limit.before: must name a required date field"),
    ("lead in working days", _set(f"{BID_NOTICE}.time_limit.unit", "working_days"),
     "$.domains[5].categories[1].time_limit.unit: a lead time is counted in days"),
    ("lead with a start", _set(f"{BID_NOTICE}.time_limit.from", "公告发布之日"),
     "$.domains[5].categories[1].time_limit.from: a lead time has no start"),
    ("publicity ending on an unknown field",
     _set(f"{CANDIDATES}.min_publicity.end", "publicity_until"),
     "$.domains[5].categories[4].min_publicity.end: 'publicity_until' is not a date field"),
    ("publicity starting on a text field",
     _set(f"{CANDIDATES}.min_publicity.start", "objection_channel"),
     "$.domains[5].categories[4].min_publicity.start: 'objection_channel' is not a date field"),
    ("publicity without basis", _del(f"{CANDIDATES}.min_publicity.basis"),
     "$.domains[5].categories[4].min_publicity.basis: Field required"),
    ("unknown withholding basis on a column",
     _set(f"{CANDIDATES}.fields.0.columns.6.withhold", "phone_number"),
     "$.domains[5].categories[4].fields[0].columns[6].withhold: unknown withholding basis "
     "'phone_number'"),
    ("unknown withholding basis on a field", _set(f"{HOUSING_PLAN}.fields.0.withhold", "secret"),
     "$.domains[0].categories[0].fields[0].withhold: unknown withholding basis 'secret'"),
    ("bad withholding key on a field",
     _set(f"{HOUSING_PLAN}.fields.0.withhold", "Personal Privacy"),
     "$.domains[0].categories[0].fields[0].withhold: String should match pattern"),
    ("version 1 deadline_days", _set(f"{HOUSING_PLAN}.deadline_days", 20),
     "$.domains[0].categories[0].deadline_days: Extra inputs are not permitted"),
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
     "$.domains[0].categories[0].publisher: Input should be 'approver', 'implementer' or "
     "'author'"),
    ("version 1", _set("version", 1), "$.version: Input should be 2"),
    ("unknown version", _set("version", 3), "$.version: Input should be 2"),
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
        ('{"version": 2, "version": 2}', "$: duplicate JSON object key 'version'"),
        ('{"version": 2,', "$: invalid JSON at line 1"),
        ("[]", "$: Input should be an object"),
        ('{"version": 2}', "$.withholding_bases: Field required"),
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
PUBLICITY = {"publicity_start": "2026-11-27", "publicity_end": "2026-11-30"}


def _cands(**row: Any) -> dict[str, Any]:
    return {"candidates": [ROW | row]} | PUBLICITY


FIELD_CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("unknown field", "bid_result", {"winner": "甲公司", "bogus": 1},
     "fields.bogus", "unknown field"),
    ("missing required", "bid_result", {"winning_price": "1.00"}, "fields.winner", "required"),
    ("null required", "bid_result", {"winner": None}, "fields.winner", "required"),
    ("missing required column", "bid_candidates", {"candidates": [{"rank": 1}]} | PUBLICITY,
     "fields.candidates[0].name", "required"),
    ("empty required table", "bid_candidates", {"candidates": []} | PUBLICITY,
     "fields.candidates", "at least one"),
    ("missing publicity end", "bid_candidates", {"candidates": [ROW],
                                                 "publicity_start": "2026-11-27"},
     "fields.publicity_end", "required"),
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
    ("non-list table", "bid_candidates", {"candidates": ROW} | PUBLICITY, "fields.candidates",
     "list"),
    ("row not an object", "bid_candidates", {"candidates": [ROW, "乙公司"]} | PUBLICITY,
     "fields.candidates[1]", "object"),
    ("too many rows", "bid_candidates", {"candidates": [ROW] * 501} | PUBLICITY,
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
        "candidates": [ROW | {"bid_price": "0.5", "duration": "90日历天"}, ROW | {"rank": 2}],
        "objection_channel": "书面提出：\n\t联系电话0990-12345678",
        **PUBLICITY,
    }
    assert validate_fields(c, good) == []
    assert validate_fields(c, good | {"objection_channel": None}) == []
    assert validate_fields(c, "not an object") == [("fields", "must be an object")]  # type: ignore[arg-type]


# --- demo items: the demo must not silently break ---

DEMO = _demo_items()


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
