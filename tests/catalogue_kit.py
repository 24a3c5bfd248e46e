"""What the catalogue tests share: the packaged file as JSON, the demo items, the names."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

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


def packaged_json() -> dict[str, Any]:
    packaged = resources.files("dispatcher.rules").joinpath("catalogue.json")
    text = packaged.read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def demo_items_json() -> list[dict[str, Any]]:
    text = resources.files("dispatcher.ops").joinpath("demo_items.json").read_text(encoding="utf-8")
    items: list[dict[str, Any]] = json.loads(text)
    return items
