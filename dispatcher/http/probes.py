"""Liveness, readiness and Prometheus metrics: /healthz, /readyz, /metrics.

Metrics are read from SQL at scrape time, so every web process reports the same figures whatever
worker did the work: deliveries by channel and state, the arq queue depth, and a histogram of
the time from a delivery being due (approval, or its scheduled time) to its confirmation. The
histogram scans confirmed deliveries on each scrape; that is cheap up to about a million rows.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from sqlalchemy.ext.asyncio import AsyncConnection

from channels.files import broken_states
from dispatcher.dispatch import queue
from dispatcher.errors import PermissionDenied
from dispatcher.http.deps import DEPS
from dispatcher.http.forwarded import client_address
from dispatcher.http.responses import json_response
from dispatcher.items import timeliness
from dispatcher.rules.deadlines import today
from dispatcher.rules.states import DeliveryStatus
from dispatcher.rules.verdicts import workday_index
from dispatcher.storage.models import deliveries

log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    checks: dict[str, str] = {}
    try:
        async with deps.db.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    if deps.queue is None:
        checks["redis"] = "not used by this process"
    else:
        try:
            trouble = await queue.disk_trouble(deps.queue)
            if trouble is None:
                await deps.queue.ping()
            checks["redis"] = "ok" if trouble is None else f"refusing writes: {trouble}"
            workers = await _sweeper(deps.queue, deps.settings.dispatch.sweep_interval)
        except Exception as exc:
            checks["redis"] = f"unreachable: {type(exc).__name__}"
        else:
            checks["workers"] = workers  # said, not judged: the API may run without workers
    broken = broken_states(deps.settings.data_path / "state")
    checks["channel state"] = "; ".join(broken.values()) or "ok"  # said, not judged (README)
    judged = {k: v for k, v in checks.items() if k not in ("workers", "channel state")}
    ready = all(v == "ok" or v.startswith("not used") for v in judged.values())
    return json_response({"ready": ready, "checks": checks}, 200 if ready else 503)


async def _sweeper(pool: Any, interval: int) -> str:
    """What the workers' sweeper says of them: when it last ran, or that it has not."""
    ago = await queue.swept_ago(pool)
    if ago is None:
        return "no worker has run on this Redis yet"
    if ago > max(3 * interval, 60):
        return f"no worker has swept for {ago:.0f} s: is one running?"
    return f"swept {ago:.0f} s ago"


def _seconds(conn: AsyncConnection, later: Any, earlier: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return sa.func.extract("epoch", later - earlier)
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0


async def _latency(conn: AsyncConnection) -> tuple[list[tuple[str, float]], float]:
    seconds = _seconds(conn, deliveries.c.confirmed_at, deliveries.c.requested_at)
    columns = [sa.func.count().label("count"), sa.func.coalesce(sa.func.sum(seconds), 0.0)]
    columns += [sa.func.sum(sa.case((seconds <= b, 1), else_=0)) for b in LATENCY_BUCKETS]
    row = (
        await conn.execute(
            sa.select(*columns).where(deliveries.c.status.in_(DeliveryStatus.confirmed()))
        )
    ).one()
    count, total = int(row[0]), float(row[1])
    buckets = [(str(b), float(row[i + 2] or 0)) for i, b in enumerate(LATENCY_BUCKETS)]
    return [*buckets, ("+Inf", float(count))], total


class _Snapshot:
    """A collector that yields metric families computed beforehand (collectors are sync)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


async def _alerts(deps: Any) -> list[Metric]:
    """Versions not yet on the website that are due within 3 working days, and overdue ones."""
    due = GaugeMetricFamily(
        "gongkai_audit_due_soon",
        "Versions not yet on the website, due within 3 working days",
        labels=["agency", "domain"],
    )
    overdue = GaugeMetricFamily(
        "gongkai_audit_overdue",
        "Versions past their deadline and not yet on the website",
        labels=["agency", "domain"],
    )
    async with deps.db.connect() as conn:
        found = await timeliness.alerts(conn, workday_index(deps.rules.calendar), today())
    for (agency, domain, kind), count in sorted(found.items()):
        (due if kind == "due_soon" else overdue).add_metric([agency, domain], count)
    return [due, overdue]


def _may_scrape(request: web.Request) -> bool:
    """Whether `/metrics` answers this request (`server.metrics_token` / `.metrics_networks`)."""
    server = request.app[DEPS].settings.server
    if not server.metrics_token and not server.metrics_networks:
        return True
    if server.metrics_token:
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {server.metrics_token}".encode()):
            return True
    remote = client_address(request, server.trusted_proxies)
    if remote is None:
        return False
    return any(remote in ipaddress.ip_network(n) for n in server.metrics_networks)


async def metrics(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    if not _may_scrape(request):
        raise PermissionDenied("/metrics answers only its scraper (server.metrics_token or "
                               "server.metrics_networks)")  # fmt: skip
    by_state = GaugeMetricFamily(
        "gongkai_deliveries", "Deliveries by channel and state", labels=["channel", "state"]
    )
    async with deps.db.connect() as conn:
        counts = await conn.execute(
            sa.select(deliveries.c.channel, deliveries.c.status, sa.func.count()).group_by(
                deliveries.c.channel, deliveries.c.status
            )
        )
        for channel, state, count in counts:
            by_state.add_metric([channel, state], count)
        buckets, total = await _latency(conn)
    latency = HistogramMetricFamily(
        "gongkai_delivery_confirm_seconds",
        "Time from a delivery being due (approval or schedule) to its confirmation",
    )
    latency.add_metric([], buckets, total)
    unreadable = GaugeMetricFamily(
        "gongkai_channel_state_unreadable",
        "1 while a channel's own state is unreadable (until its rebuild)",
        labels=["channel"],
    )
    for channel in broken_states(deps.settings.data_path / "state"):
        unreadable.add_metric([channel], 1)
    families: list[Metric] = [by_state, latency, unreadable, *await _alerts(deps)]
    if deps.queue is not None:
        depth = GaugeMetricFamily("gongkai_queue_depth", "Jobs waiting in the arq queue")
        swept = GaugeMetricFamily(
            "gongkai_sweeper_age_seconds", "Seconds since a worker's sweeper last ran"
        )
        try:
            depth.add_metric([], await queue.depth(deps.queue))
            families.append(depth)
            ago = await queue.swept_ago(deps.queue)
            if ago is not None:
                swept.add_metric([], ago)
                families.append(swept)
            disk = GaugeMetricFamily(
                "gongkai_redis_disk_ok", "1 while Redis can write to its disk, 0 when it cannot"
            )
            disk.add_metric([], 0 if await queue.disk_trouble(deps.queue) else 1)
            families.append(disk)
        except Exception as exc:
            log.warning("queue depth unavailable: %s", exc)
    registry = CollectorRegistry()
    registry.register(_Snapshot(families))
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
