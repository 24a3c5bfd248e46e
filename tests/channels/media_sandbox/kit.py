"""What the outlet sandbox's tests share: events, signed as a sender signs them, posted over real
HTTP, and a bounded wait for what the outlet recorded."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from standardwebhooks.webhooks import Webhook

TIMEOUT = 10.0  # seconds any one step of a test may take
NAME = "xinhua"


def event(type_: str = "item.published", item_id: int = 7, version: int = 1,
          **data: Any) -> str:  # fmt: skip
    """An event's JSON text, as the channel sends it (UTF-8, no ASCII escapes)."""
    body = {
        "type": type_,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "schema_version": 1,
        "data": {
            "item_id": item_id,
            "version": version,
            "title": "示范市中心医院门诊楼改造工程中标候选人公示",
            "summary": "评标委员会推荐的中标候选人及排序",
            "body_html": "<p>现将中标候选人公示如下。</p>",
            "body_text": "现将中标候选人公示如下。",
            "withdrawn": type_ == "item.withdrawn",
            "withdrawal_reason": None,
            "url": f"https://gk.example.gov.cn/items/{item_id}.html",
            "agency": {"code": "12990100MB0000004D", "name": "示范市公共资源交易中心"},
            **data,
        },
    }
    return json.dumps(body, ensure_ascii=False)


def headers(msg_id: str, body: str, *secrets: str, age: timedelta = timedelta()
            ) -> dict[str, str]:  # fmt: skip
    """The Standard Webhooks headers of `body`, signed with each of `secrets`, `age` ago."""
    at = datetime.now(UTC) - age
    return {
        "Content-Type": "application/json; charset=utf-8",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(Webhook(s).sign(msg_id, at, body) for s in secrets),
    }


@dataclass
class Answer:
    status: int
    json: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Poster:
    """Raw HTTP to the running outlets."""

    base_url: str
    http: aiohttp.ClientSession

    async def post(self, body: str | bytes, head: dict[str, str], name: str = NAME,
                   within: float = TIMEOUT) -> Answer:  # fmt: skip
        url = f"{self.base_url}/outlets/{name}/events"
        data = io.BytesIO(body.encode() if isinstance(body, str) else body)
        limit = aiohttp.ClientTimeout(total=within)
        async with self.http.post(url, data=data, headers=head, timeout=limit,
                                  allow_redirects=False) as response:  # fmt: skip
            text = await response.text()
            parsed = json.loads(text) if text else {}
            return Answer(response.status, parsed, dict(response.headers))

    async def send(self, msg_id: str, body: str, *secrets: str, name: str = NAME,
                   age: timedelta = timedelta()) -> Answer:  # fmt: skip
        return await self.post(body, headers(msg_id, body, *secrets, age=age), name)

    async def get(self, path: str) -> tuple[int, dict[str, str], str]:
        """Status, headers and text of a page."""
        async with self.http.get(self.base_url + path) as response:
            return response.status, dict(response.headers), await response.text()
