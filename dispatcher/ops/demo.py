"""`gongkai demo`: sample agencies and items from all six domains, then the API.

The items in `demo_items.json` are dated as of `ANCHOR`; the demo moves every date by the days
from `ANCHOR` to today (Beijing), so the statutory timing holds on whatever day it runs: nothing is
formed in the future, a notice still precedes its event by the lead time, and a publicity period
a holiday made too short is lengthened to the legal minimum.

Re-running is safe: agencies are registered once, items are submitted with fixed
Idempotency-Keys (an item already submitted on an earlier day is kept, not submitted again), and
only items still awaiting approval are approved. Fresh tokens are printed each run (they are for
the local demo database only).
"""

from __future__ import annotations

import contextlib
import json
import re
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any

import sqlalchemy as sa

from channels.media import SPEC as MEDIA
from channels.registry import split_name
from channels.wechat import SPEC as WECHAT
from dispatcher.errors import Conflict, InputError
from dispatcher.items import accounts, workflow
from dispatcher.ops.sandbox import sandboxes
from dispatcher.rules.calendar import WorkCalendar
from dispatcher.rules.catalogue import Catalogue
from dispatcher.rules.deadlines import today
from dispatcher.rules.limits import shortest_end
from dispatcher.rules.permissions import Actor, publishing_agency
from dispatcher.rules.rulebook import Rules, build_rules
from dispatcher.rules.states import Role
from dispatcher.settings import Settings
from dispatcher.storage.db import Database, migrate
from dispatcher.storage.models import items as items_table

AGENCIES = (
    ("11990100MB0000001A", "示范市住房和城乡建设局", "990100"),
    ("11990100MB0000002B", "示范市自然资源局", "990100"),
    ("11990100MB0000003C", "示范市财政局", "990100"),
    ("12990100MB0000004D", "示范市公共资源交易中心", "990100"),
    ("11990100MB0000005E", "示范市国有资产监督管理委员会", "990100"),
)
EDITOR, APPROVER = "演示编辑", "演示审核人"
# The day demo_items.json is written for (a Friday): its dates are as seen on that day.
ANCHOR = date(2026, 11, 27)
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def demo_items() -> list[dict[str, Any]]:
    """The sample items as written, dated as of `ANCHOR`."""
    text = resources.files("dispatcher.ops").joinpath("demo_items.json").read_text("utf-8")
    items: list[dict[str, Any]] = json.loads(text)
    return items


def shift_dates(items: list[dict[str, Any]], days: int) -> list[dict[str, Any]]:
    """The items with every date moved by `days`: `formed_on`, the day of `publish_at`, and each
    string in `fields` that is exactly a YYYY-MM-DD date. Titles, text and document numbers keep
    the dates they were written with."""
    by = timedelta(days=days)

    def move(value: Any) -> Any:
        if isinstance(value, str) and _DATE_RE.fullmatch(value):
            return (date.fromisoformat(value) + by).isoformat()
        if isinstance(value, list):
            return [move(v) for v in value]
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        return value

    moved = []
    for item in items:
        changes = {"formed_on": move(item["formed_on"]), "fields": move(item.get("fields", {}))}
        at = item.get("publish_at")
        if isinstance(at, str):
            changes["publish_at"] = (datetime.fromisoformat(at) + by).isoformat()
        moved.append(item | changes)
    return moved


def lengthen_publicity(
    items: list[dict[str, Any]], catalogue: Catalogue, calendar: WorkCalendar
) -> list[dict[str, Any]]:
    """The items with any publicity period (公示期) under its category's minimum ended on the
    earliest lawful day instead: after a shift, a rest day or a holiday can fall at its end."""
    found = []
    for item in items:
        category = catalogue.category(item["domain"], item["category"])
        rule = category.min_publicity if category else None
        fields = item.get("fields", {})
        first, last = (fields.get(rule.start), fields.get(rule.end)) if rule else (None, None)
        if rule and isinstance(first, str) and isinstance(last, str):
            shortest = shortest_end(calendar, rule, date.fromisoformat(first))
            if date.fromisoformat(last) < shortest:
                item = item | {"fields": fields | {rule.end: shortest.isoformat()}}
        found.append(item)
    return found


def sample_items(rules: Rules, on: date) -> list[dict[str, Any]]:
    """The sample items as of `on`: moved by the days from `ANCHOR`, publicity periods lawful."""
    moved = shift_dates(demo_items(), (on - ANCHOR).days)
    return lengthen_publicity(moved, rules.catalogue, rules.calendar)


async def _submitted(db: Database, agency: str, key: str) -> int | None:
    """The item an earlier run submitted with this Idempotency-Key (maybe on another day, so
    with other dates), if any."""
    async with db.connect() as conn:
        found = await conn.scalar(
            sa.select(items_table.c.id).where(
                items_table.c.agency_code == agency, items_table.c.idempotency_key == key
            )
        )
    return None if found is None else int(found)


async def load_demo(db: Database, rules: Rules, on: date | None = None) -> dict[str, Any]:
    """Register the sample agencies, submit and approve the sample items (dated as of `on`,
    today in Beijing by default); return a summary."""
    async with db.transaction() as conn:
        for code, name, region in AGENCIES:
            if await accounts.get_agency(conn, code) is None:
                await accounts.add_agency(conn, code, name, region)
    summary: dict[str, Any] = {"items": [], "tokens": {}}
    for n, item in enumerate(sample_items(rules, on or today()), start=1):
        category = rules.catalogue.category(item["domain"], item["category"])
        agency = publishing_agency(category, item) if category else None
        if agency is None:
            raise InputError([(f"demo_items[{n - 1}]", "names no catalogue category or publisher")])
        editor = Actor(agency, Role.EDITOR, EDITOR)
        item_id = await _submitted(db, agency, f"demo-{n}")
        if item_id is None:
            item_id, _ = await workflow.submit(db, rules, editor, item, f"demo-{n}")
        with contextlib.suppress(Conflict):  # approved on an earlier run
            await workflow.approve(db, Actor(agency, Role.APPROVER, APPROVER), item_id)
        summary["items"].append((item_id, item["title"]))
    first = AGENCIES[3][0]
    async with db.transaction() as conn:
        holders = {Role.EDITOR: EDITOR, Role.APPROVER: APPROVER, Role.AUDITOR: "演示审计"}
        for role, holder in holders.items():
            summary["tokens"][role] = await accounts.create_token(conn, first, role, holder)
    summary["agency"] = first
    return summary


def _banner(settings: Settings, summary: dict[str, Any]) -> str:
    site = f"http://{settings.server.host}:{settings.server.port}"
    base = f"{site}/api/v1"
    lines = [f"Gongkai demo: {len(summary['items'])} sample items in {settings.database_url}"]
    lines += [
        f"The disclosure column: {site}/  (pages under {settings.data_path / 'site'})",
        f"  a project's lifecycle: {site}/projects/E9901002026000018/",
        f"  feeds: {site}/feeds/all.atom  {site}/feeds/all.rss  (and per domain, agency, region)",
        f"  search: {site}/search?q=%E4%B8%AD%E6%A0%87  (中标)",
    ]
    lines += [f"  item {item_id}: {title}" for item_id, title in summary["items"]]
    lines.append(f"Tokens for {summary['agency']} 示范市公共资源交易中心 (this run only):")
    lines += [f"  {role:9} {token}" for role, token in summary["tokens"].items()]
    auditor = summary["tokens"]["auditor"]
    lines += [
        "Try:",
        f"  curl {base}/catalogue",
        f"  curl -H 'Authorization: Bearer {auditor}' {base}/items",
        f"  curl {base}/openapi.json",
        "",
    ]
    return "\n".join(lines)


async def run_demo(settings: Settings, serve_after: bool = True) -> None:
    """Load the samples; unless `serve_after` is False, serve them with the WeChat sandbox and
    the news outlet sandbox (each when no real channel of its kind is enabled), so the articles
    and events can be watched too."""
    settings.check_channels()
    kinds = {split_name(name)[0] for name in settings.channels.enabled}
    wechat, media = WECHAT.kind not in kinds, MEDIA.kind not in kinds
    if not serve_after or not (wechat or media):
        await _load_and_serve(settings, serve_after, "")
        return
    async with sandboxes(settings, wechat=wechat, media=media) as rehearsal:
        await _load_and_serve(rehearsal.settings, serve_after, rehearsal.banner(names=False))


async def _load_and_serve(settings: Settings, serve_after: bool, note: str) -> None:
    rules = build_rules(settings)  # a bad catalogue or calendar stops it before anything is written
    db = Database(settings.database_url)
    try:
        await migrate(db)
        summary = await load_demo(db, rules)
    finally:
        await db.dispose()
    banner = note + _banner(settings, summary)
    if not serve_after:
        print(banner, flush=True)
        return
    from dispatcher.ops.serve import serve

    await serve(settings, banner)
