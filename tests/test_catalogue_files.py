"""A broken catalogue file is refused with the JSON path of each problem."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dispatcher.rules.catalogue import (
    CatalogueError,
    load_catalogue,
)
from tests.catalogue_kit import (
    packaged_json,
)

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
    data = copy.deepcopy(packaged_json())
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
    data = packaged_json()
    bidding = data["domains"][5]["categories"]
    bidding.reverse()
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    keys = list(load_catalogue(path).domains["bidding"].categories)
    assert keys.index("bid_notice") < keys.index("bid_candidates") < keys.index("bid_result")
