"""The packaged catalogue: domains, categories, who publishes, time rules; item field checks."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from channels import REGISTRY
from dispatcher.rules.catalogue import (
    Catalogue,
    Category,
    format_catalogue,
    load_catalogue,
    validate_fields,
)
from tests.catalogue_kit import (
    DECISIONS_BASIS,
    DOMAINS,
    GENERAL_BASIS,
    packaged_json,
)

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
    data = packaged_json()
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
