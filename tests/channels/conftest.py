"""Fixtures for the file-writing channels: a Publication factory and a channel context."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from channels.base import ChannelContext, Publication
from tests.helpers import CATALOGUE

BASE_URL = "https://gk.example.gov.cn"

Ctx = Callable[..., ChannelContext]
MakePub = Callable[..., Publication]
FEEDS = [
    (None, None),
    ("domains", "bidding"),
    ("agencies", "12990100MB0000004D"),
    ("regions", "500103"),
]  # the four feeds the default publication is in


def _publication(**overrides: Any) -> Publication:
    item_id = overrides.get("item_id", 7)
    version = overrides.get("version", 1)
    values: dict[str, Any] = {
        "key": f"{item_id}:{version}:website",
        "item_id": item_id,
        "version": version,
        "action": "publish",
        "index_no": "12990100MB0000004D/2026-00007",
        "agency_code": "12990100MB0000004D",
        "agency_name": "示范市公共资源交易中心",
        "domain": "bidding",
        "category": "bid_candidates",
        "title": "某某市中心医院门诊楼改造工程中标候选人公示",
        "summary": "评标委员会推荐的中标候选人及排序",
        "body_html": "<p>公示期三日。</p>",
        "fields": {
            "candidates": [
                {"rank": 1, "name": "某某建设集团有限公司", "bid_price": "12345678.00",
                 "project_lead": "张某"},
                {"rank": 2, "name": "另一建设有限公司", "bid_price": "12400000.00",
                 "project_lead": "李某", "project_lead_phone": "13900000000"},
            ],
            "duration_days": 180,
        },
        "withheld": (
            {"field": "fields.candidates[0].project_lead_phone", "basis": "personal_privacy",
             "basis_name": "个人隐私"},
        ),
        "formed_on": date(2026, 11, 20),
        "changed_on": None,
        "decision": None,
        "project_code": "E5000000001234567",
        "region": "500103",
        "document_number": "示公资〔2026〕12号",
        "keywords": ("招标投标", "中标候选人"),
        "validity": "valid",
        "change_note": None,
        "approved_at": datetime(2026, 11, 23, 17, 30, tzinfo=UTC),  # 2026-11-24 in Shanghai
    }  # fmt: skip
    values.update(overrides)
    if "domain_name" not in overrides:
        values.update(CATALOGUE.labels(values["domain"], values["category"]))
    return Publication(**values)


@pytest.fixture(autouse=True)
def _local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy between requests and 127.0.0.1."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@pytest.fixture
def make_pub() -> MakePub:
    """Build a Publication: realistic defaults, any field overridden by keyword."""
    return _publication


@pytest.fixture
def context(tmp_path: Path) -> Callable[..., ChannelContext]:
    """A ChannelContext on a fresh data directory; keywords go into its settings."""

    def make(
        name: str = "website", data_dir: Path | None = None, **settings: Any
    ) -> ChannelContext:
        return ChannelContext(
            name=name,
            settings={"base_url": BASE_URL + "/", **settings},
            session=None,
            data_dir=str(data_dir or tmp_path / "var"),
        )

    return make
