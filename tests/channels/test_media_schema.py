"""Every media event validates against its published JSON Schema (`docs/media/event.schema.json`),
the schema is strict enough to refuse what an outlet must never receive, and the example event
in the outlets' guide (`docs/media/guide.md`) is a valid one."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from channels.media.events import event_body
from tests.channels.conftest import BASE_URL, MakePub

DOCS = Path(__file__).resolve().parents[2] / "docs" / "media"
SCHEMA: dict[str, Any] = json.loads((DOCS / "event.schema.json").read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
NOW = datetime(2026, 11, 24, 1, 30, 5, tzinfo=UTC)

# Publications an outlet meets: overrides of `make_pub`'s realistic defaults, and the event type.
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "first version": ({}, "item.published"),
    "revision": (
        {
            "version": 2,
            "change_note": "更正第二中标候选人投标报价",
            "changed_on": date(2026, 11, 25),
            "approved_at": datetime(2026, 11, 25, 2, 0, 0, 123456, tzinfo=UTC),
        },
        "item.revised",
    ),
    "withdrawal": (
        {
            "version": 3,
            "action": "withdraw",
            "change_note": "项目终止，撤回本公示",
            "changed_on": date(2026, 11, 26),
            "validity": "repealed",
        },
        "item.withdrawn",
    ),
    "withheld parts": (
        {
            "summary": "",
            "body_html": "",
            "document_number": None,
            "keywords": (),
            "fields": {"candidates": [{"rank": 1, "name": "某某建设集团有限公司"}]},
            "withheld": (
                {"field": "summary", "basis": "personal_privacy", "basis_name": "个人隐私"},
                {"field": "body_html", "basis": "trade_secret", "basis_name": "商业秘密"},
                {"field": "document_number", "basis": "process_info"},
                {"field": "keywords", "basis": "personal_privacy", "basis_name": "个人隐私"},
                {"field": "fields.objection_channel", "basis": "personal_privacy"},
                {
                    "field": "fields.candidates[0].bid_price",
                    "basis": "trade_secret",
                    "basis_name": "商业秘密",
                },
            ),
        },
        "item.published",
    ),
    "no codes or approval": (
        {"index_no": None, "project_code": None, "approved_at": None, "decision": None},
        "item.published",
    ),
    "table fields": (
        {
            "domain": "land",
            "category": "transfer_notice",
            "project_code": "TD-2026_0042",
            "fields": {
                "transferor": "示范市自然资源局",
                "application_deadline": "2026-12-20",
                "parcels": [
                    {
                        "parcel_no": "示土2026-01",
                        "area_m2": "23456.78",
                        "land_use": "住宅用地",
                        "starting_price": "98000000.00",
                        "years": 70,
                        "mixed_use": False,
                        "note": None,
                    },
                    {"parcel_no": "示土2026-02", "area_m2": "1200.00", "land_use": "商业用地"},
                ],
                "bidder_requirements": "中华人民共和国境内外的法人\n和其他组织均可申请",
                "deposit_required": True,
                "optional": None,
            },
            "withheld": (),
        },
        "item.published",
    ),
    "administrative penalty": (
        {
            "domain": "procurement",
            "category": "violation_record",
            "decision": "administrative_penalty",
            "validity": "expired",
            "region": "990101",
            "fields": {"party": "某某商贸有限公司", "decided_on": "2026-11-01"},
            "withheld": (),
        },
        "item.published",
    ),
    "markup and emoji": (
        {
            "title": '<script>alert("x")</script> 关于“阳光采购”🎉的公示 & 说明',
            "summary": "</p><img src=x onerror=alert(1)> 😀👍🏽",
            "body_html": "<p>第一段 &amp; 😀</p><table><tr><td>甲</td><td>乙</td></tr></table>",
            "keywords": ("🎉", "<b>"),
            "document_number": "示〔2026〕1号 🚧",
        },
        "item.published",
    ),
    "naive approval time, unknown category": (
        {
            "category": "no_such_category",
            "approved_at": datetime(2026, 11, 23, 17, 30, 0, 5),
            "fields": {},
            "withheld": (),
        },
        "item.published",
    ),
}


def _errors(event: Any) -> list[str]:
    found = VALIDATOR.iter_errors(event)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]


def _event(make_pub: MakePub, now: datetime = NOW, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(event_body(make_pub(**overrides), BASE_URL, now))
    return event


@pytest.fixture
def event(make_pub: MakePub) -> dict[str, Any]:
    """A valid event (the default publication's first version), to spoil."""
    found = _event(make_pub)
    assert _errors(found) == []
    return found


def test_the_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["$id"].startswith("https://gongkai.example/")


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_events_validate(make_pub: MakePub, case: str) -> None:
    overrides, kind = CASES[case]
    event = _event(make_pub, **overrides)
    assert _errors(event) == []
    assert event["type"] == kind


def test_a_timestamp_with_fractional_seconds_validates(make_pub: MakePub) -> None:
    event = _event(make_pub, now=datetime(2026, 11, 24, 1, 30, 5, 250000, tzinfo=UTC))
    assert event["timestamp"] == "2026-11-24T01:30:05.250000Z"
    assert _errors(event) == []


def test_the_schema_names_every_key_the_code_gives_and_requires_it(
    event: dict[str, Any],
) -> None:
    envelope, item = SCHEMA, SCHEMA["$defs"]["item"]
    assert list(envelope["properties"]) == list(event) == envelope["required"]
    assert list(item["properties"]) == list(event["data"]) == item["required"]


def _properties(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            yield f"{where}/{name}", sub
        for key, sub in node.items():
            yield from _properties(sub, f"{where}/{key}")
    elif isinstance(node, list):
        for sub in node:
            yield from _properties(sub, where)


def test_every_property_is_described_in_chinese_and_english() -> None:
    described = 0
    for where, sub in _properties(SCHEMA):
        if "/if/" in where or "/then/" in where or "/else/" in where or set(sub) <= {"pattern"}:
            continue  # a condition, or a refinement of a property described elsewhere
        text = sub.get("description", "")
        assert re.search(r"[\u4e00-\u9fff]", text), f"{where}: no Chinese in {text!r}"
        assert re.search(r"\([a-z][^)]*\)|[A-Za-z]{4,}", text), f"{where}: no English in {text!r}"
        described += 1
    assert described >= 40


@pytest.mark.parametrize("key", ["type", "timestamp", "schema_version", "data"])
def test_an_envelope_without_a_required_key_fails(event: dict[str, Any], key: str) -> None:
    del event[key]
    assert _errors(event)


def test_data_without_any_one_of_its_keys_fails(event: dict[str, Any]) -> None:
    for key in event["data"]:
        spoiled = copy.deepcopy(event)
        del spoiled["data"][key]
        assert _errors(spoiled), key


UNKNOWN_KEY_PLACES = [(), ("data",), ("data", "agency"), ("data", "domain"), ("data", "feeds")]


@pytest.mark.parametrize("path", [*UNKNOWN_KEY_PLACES, ("data", "withheld", 0)])
def test_unknown_keys_fail(event: dict[str, Any], path: tuple[str | int, ...]) -> None:
    target: Any = event
    for step in path:
        target = target[step]
    target["extra"] = "?"
    assert _errors(event)


def _set(event: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    target: Any = event
    for step in parents:
        target = target[int(step)] if step.isdigit() else target[step]
    target[last] = value


@pytest.mark.parametrize(
    ("dotted", "value"),
    [
        ("type", "item.deleted"),
        ("type", "item.revised"),  # the event is version 1: a first version, not a revision
        ("schema_version", 2),
        ("timestamp", "2026-11-24T01:30:05+00:00"),
        ("timestamp", "2026-11-24 01:30:05Z"),
        ("data.formed_on", "2026-13-01"),
        ("data.formed_on", "2026/11/20"),
        ("data.formed_on", None),
        ("data.changed_on", "20261125"),
        ("data.released_on", "2026-11-24T00:00:00Z"),
        ("data.approved_at", "2026-11-23T17:30:00"),
        ("data.item_id", 0),
        ("data.item_id", "7"),
        ("data.version", 0),
        ("data.withdrawn", True),  # not in an item.published event
        ("data.withdrawal_reason", "撤回"),  # likewise
        ("data.region", "5001"),
        ("data.region", 500103),
        ("data.agency.code", "not-a-credit-code"),
        ("data.domain.key", "Bidding"),
        ("data.validity", "有效"),
        ("data.decision", "administrative_review"),
        ("data.project_code", "E/1"),
        ("data.title", None),
        ("data.keywords", "招标投标"),
        ("data.url", "javascript:alert(1)"),
        ("data.url", "https://gk.example.gov.cn/items/7"),
        ("data.feeds.all", "ftp://gk.example.gov.cn/feeds/all.atom"),
        ("data.fields", []),
        ("data.fields.nested", {"a": 1}),
        ("data.fields.candidates.0.name", ["list", "in", "a", "cell"]),
        ("data.fields.ratio", 0.5),  # decimals are strings
        ("data.field_labels.candidates", 1),
        ("data.withheld.0.basis", None),
    ],
)
def test_wrong_values_fail(event: dict[str, Any], dotted: str, value: Any) -> None:
    _set(event, dotted, value)
    assert _errors(event), f"{dotted} = {value!r} passed"


def test_a_withdrawal_cannot_claim_to_be_live(make_pub: MakePub) -> None:
    overrides, _ = CASES["withdrawal"]
    event = _event(make_pub, **overrides)
    event["data"]["withdrawn"] = False
    assert _errors(event)
    event["data"]["withdrawn"], event["data"]["change_note"] = True, "说明"
    assert _errors(event)


def test_a_revision_is_never_version_1(make_pub: MakePub) -> None:
    overrides, _ = CASES["revision"]
    event = _event(make_pub, **overrides)
    event["data"]["version"] = 1
    assert _errors(event)


def _guide_example() -> dict[str, Any]:
    guide = (DOCS / "guide.md").read_text(encoding="utf-8")
    found = re.search(r"^```json\n(.*?)^```$", guide, re.DOTALL | re.MULTILINE)
    assert found, "guide.md has no ```json block"
    example: dict[str, Any] = json.loads(found[1])
    return example


def test_the_guide_example_is_a_valid_event() -> None:
    example = _guide_example()
    assert _errors(example) == []
    assert example["type"] == "item.published"


def test_the_guide_example_has_the_shape_the_code_gives(event: dict[str, Any]) -> None:
    """The example was made by `event_body`: same keys, in the same order, at every level."""
    example = _guide_example()
    assert list(example) == list(event)
    assert list(example["data"]) == list(event["data"])
    for key, value in event["data"].items():
        if isinstance(value, dict) and key not in ("fields", "field_labels"):
            assert list(example["data"][key]) == list(value), key
