"""`gongkai demo`: sample agencies and items from all six domains, then the API.

Re-running is safe: agencies are registered once, items are submitted with fixed
Idempotency-Keys, and only items still awaiting approval are approved. Fresh tokens are printed
each run (they are for the local demo database only).
"""

from __future__ import annotations

import contextlib
import json
from importlib import resources
from typing import Any

from channels.registry import split_name
from channels.wechat import SPEC as WECHAT
from dispatcher.errors import Conflict, InputError
from dispatcher.items import accounts, workflow
from dispatcher.ops.sandbox import wechat_sandbox
from dispatcher.rules.permissions import Actor, publishing_agency
from dispatcher.rules.rulebook import Rules, build_rules
from dispatcher.rules.states import Role
from dispatcher.settings import Settings
from dispatcher.storage.db import Database, migrate

AGENCIES = (
    ("11990100MB0000001A", "示范市住房和城乡建设局", "990100"),
    ("11990100MB0000002B", "示范市自然资源局", "990100"),
    ("11990100MB0000003C", "示范市财政局", "990100"),
    ("12990100MB0000004D", "示范市公共资源交易中心", "990100"),
    ("11990100MB0000005E", "示范市国有资产监督管理委员会", "990100"),
)
EDITOR, APPROVER = "演示编辑", "演示审核人"


def demo_items() -> list[dict[str, Any]]:
    text = resources.files("dispatcher.ops").joinpath("demo_items.json").read_text("utf-8")
    items: list[dict[str, Any]] = json.loads(text)
    return items


async def load_demo(db: Database, rules: Rules) -> dict[str, Any]:
    """Register the sample agencies, submit and approve the sample items; return a summary."""
    async with db.transaction() as conn:
        for code, name, region in AGENCIES:
            if await accounts.get_agency(conn, code) is None:
                await accounts.add_agency(conn, code, name, region)
    summary: dict[str, Any] = {"items": [], "tokens": {}}
    for n, item in enumerate(demo_items(), start=1):
        category = rules.catalogue.category(item["domain"], item["category"])
        agency = publishing_agency(category, item) if category else None
        if agency is None:
            raise InputError([(f"demo_items[{n - 1}]", "names no catalogue category or publisher")])
        editor = Actor(agency, Role.EDITOR, EDITOR)
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
    """Load the samples; unless `serve_after` is False, serve them with the WeChat sandbox
    (when no real WeChat account is enabled) so the articles can be watched too."""
    settings.check_channels()
    wechat = any(split_name(name)[0] == WECHAT.kind for name in settings.channels.enabled)
    if not serve_after or wechat:
        await _load_and_serve(settings, serve_after, "")
        return
    async with wechat_sandbox(settings) as (rehearsal, page):
        await _load_and_serve(rehearsal, serve_after, f"WeChat sandbox: {page}\n")


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
