"""The sample item the benchmarks submit: a bidding candidates notice of the trading centre."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from dispatcher.storage.models import deliveries, item_versions

CENTER = "12990100MB0000004D"  # 示范市公共资源交易中心, the implementing body


def bid_item(n: int, channels: list[str] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "domain": "bidding",
        "category": "bid_candidates",
        "title": f"示范市第{n}号工程中标候选人公示",
        "summary": "评标委员会推荐的中标候选人及排序",
        "body_html": "<p>现将中标候选人公示如下。</p>" * 20,
        "formed_on": "2026-11-20",
        "implementing_agency": CENTER,
        "project_code": f"E99010020260{n:05d}",
        "region": "990101",
        "fields": {"candidates": [{"rank": r, "name": f"候选单位{r}", "bid_price": "1000000.00"}
                                  for r in (1, 2, 3)],
                   "publicity_start": "2026-11-21", "publicity_end": "2026-11-27"},
    }  # fmt: skip
    if channels is not None:
        item["channels"] = channels
    return item


def delivery_rows(first: int, channel: Any) -> sa.Select[Any]:
    """A run's deliveries (items from `first` on, `channel` a condition on their channel) with
    what the benchmarks report: state, attempts, confirmation and the version's approval time."""
    versions = sa.and_(
        item_versions.c.item_id == deliveries.c.item_id,
        item_versions.c.version == deliveries.c.version,
    )
    columns = (deliveries.c.item_id, deliveries.c.version, deliveries.c.channel,
               deliveries.c.status, deliveries.c.attempts, deliveries.c.confirmed_at,
               deliveries.c.last_error, item_versions.c.approved_at)  # fmt: skip
    return (
        sa.select(*columns)
        .join(item_versions, versions)
        .where(deliveries.c.item_id >= first, channel)
    )
