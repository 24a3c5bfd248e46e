"""/healthz, /readyz and /metrics as an operator's monitoring sees them."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from channels import REGISTRY
from dispatcher.errors import SettingsError
from dispatcher.http.app import create_app
from dispatcher.settings import Settings, load_settings
from dispatcher.storage.db import Database
from tests.helpers import TokenFactory, bid_candidates, running_worker, wait_until

Client = TestClient[Any, Any]


async def test_health_and_readiness(api: Client) -> None:
    health = await api.get("/healthz")
    assert (health.status, await health.json()) == (200, {"status": "ok"})
    ready = await (await api.get("/readyz")).json()
    workers = "no worker has run on this Redis yet"  # said, not judged: the API runs alone here
    checks = {"database": "ok", "redis": "ok", "workers": workers, "channel state": "ok"}
    assert ready == {"ready": True, "checks": checks}


async def test_readyz_and_metrics_say_when_a_worker_last_swept(
    api: Client, dispatch_settings: Settings
) -> None:
    async def swept() -> bool:
        checks = (await (await api.get("/readyz")).json())["checks"]
        return bool(checks["workers"].startswith("swept"))

    async with running_worker(dispatch_settings, dict(REGISTRY)):
        await wait_until(swept)
    text = await (await api.get("/metrics")).text()
    [age] = [s.value for f in text_string_to_metric_families(text) for s in f.samples
             if s.name == "gongkai_sweeper_age_seconds"]  # fmt: skip
    assert 0 <= age < 60


async def test_not_ready_when_redis_is_unreachable(
    dispatch_settings: Settings, db: Database
) -> None:
    # A port nothing listens on: connecting fails at once, nothing leaves this machine.
    app = create_app(dispatch_settings, db, redis_url="redis://127.0.0.1:9/0")
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/readyz")
        body = await response.json()
    assert response.status == 503
    assert body["ready"] is False
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("unreachable")


async def test_metrics_count_deliveries_and_queue(api: Client, make_token: TokenFactory) -> None:
    editor = await make_token("editor", holder="编辑")
    approver = await make_token("approver", holder="审核")
    for n in range(3):
        item = await (
            await api.post("/api/v1/items", json=bid_candidates(title=f"公示{n}"), headers=editor)
        ).json()
        await api.post(f"/api/v1/items/{item['id']}/approve", headers=approver)
    response = await api.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    pending = {
        s.labels["channel"]: s.value
        for s in families["gongkai_deliveries"].samples
        if s.labels["state"] == "pending"
    }
    assert pending == {"website": 3.0, "feeds": 3.0}
    assert families["gongkai_queue_depth"].samples[0].value == 6.0
    histogram = families["gongkai_delivery_confirm_seconds"]
    count = [s for s in histogram.samples if s.name.endswith("_count")]
    assert count[0].value == 0.0


@pytest.mark.parametrize(
    ("env", "headers", "status"),
    [
        ({}, {}, 200),  # neither set: open, as on one's own machine
        ({"GONGKAI_METRICS_TOKEN": "scrape-secret"}, {}, 403),
        ({"GONGKAI_METRICS_TOKEN": "scrape-secret"}, {"Authorization": "Bearer wrong"}, 403),
        ({"GONGKAI_METRICS_TOKEN": "scrape-secret"},
         {"Authorization": "Bearer scrape-secret"}, 200),
        ({"GONGKAI_METRICS_NETWORKS": "10.0.0.0/8"}, {}, 403),  # the test client is 127.0.0.1
        ({"GONGKAI_METRICS_NETWORKS": "10.0.0.0/8,127.0.0.1/32"}, {}, 200),
    ],
    ids=["open", "token-missing", "token-wrong", "token", "other-network", "network"],
)  # fmt: skip
async def test_metrics_can_be_restricted(
    dispatch_env: dict[str, str], db: Database, env: dict[str, str], headers: dict[str, str],
    status: int,
) -> None:  # fmt: skip
    app = create_app(load_settings(env={**dispatch_env, **env}), db)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/metrics", headers=headers)
        assert response.status == status, await response.text()
        assert (await client.get("/healthz")).status == 200  # probes stay open


def test_a_metrics_network_that_is_not_one_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"metrics_networks.*not a network"):
        load_settings(env={"GONGKAI_METRICS_NETWORKS": "10.0.0.0/8,intranet"})
