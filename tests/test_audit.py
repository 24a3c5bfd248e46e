"""The timeliness audit end to end: real items through the workflow and a real worker, then the
rows, the summary, the annual figures and the CSV, from the API as an auditor and as an editor,
with a tampered publication time flagged. Expected verdicts are worked out with the calendar,
not copied from the code under test."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from channels import REGISTRY
from channels.base import SHANGHAI
from dispatcher.items import workflow
from dispatcher.rules.deadlines import today
from dispatcher.rules.limits import period_end
from dispatcher.rules.rulebook import build_rules
from dispatcher.rules.verdicts import WorkdayIndex
from dispatcher.settings import Settings
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries
from tests.helpers import (
    APPROVER,
    CENTER,
    EDITOR,
    Client,
    TokenFactory,
    all_in,
    bid_candidates,
    running_worker,
    wait_until,
)

TODAY = today()


def fresh(**changes: Any) -> dict[str, Any]:
    """A bid-candidates item formed today, its publicity starting tomorrow."""
    fields = {**bid_candidates()["fields"],
              "publicity_start": (TODAY + timedelta(days=1)).isoformat(),
              "publicity_end": (TODAY + timedelta(days=8)).isoformat()}  # fmt: skip
    return bid_candidates(formed_on=TODAY.isoformat(), fields=fields, **changes)


@pytest.fixture
async def released(
    db: Database, agencies: list[str], dispatch_settings: Settings
) -> dict[str, int]:
    """On time (published), late (published, formed 20 days ago), due (formed today, not
    approved), overdue (formed 20 days ago, not approved)."""
    rules = build_rules(dispatch_settings)
    old = (TODAY - timedelta(days=20)).isoformat()
    ids = {}
    for name, item, approve in (
        ("on_time", fresh(title="按时公示"), True),
        ("late", bid_candidates(formed_on=old, title="=HYPERLINK(\"x\")迟到公示",
                                late_reason="评标报告延迟送达"), True),
        ("due", fresh(title="待发布公示", project_code="E9901000001234568"), False),
        ("overdue", bid_candidates(formed_on=old, title="逾期未发布公示",
                                   project_code="E9901000001234569",
                                   late_reason="材料不全"), False),
    ):  # fmt: skip
        ids[name], _ = await workflow.submit(db, rules, EDITOR, item)
        if approve:
            await workflow.approve(db, APPROVER, ids[name])
    async with running_worker(dispatch_settings, dict(REGISTRY)):
        await wait_until(all_in(db, "published"))
    return ids


async def _rows(api: Client, token: dict[str, str], **query: str) -> dict[str, Any]:
    response = await api.get("/api/v1/audit/timeliness", params=query, headers=token)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def _website_time(db: Database, item_id: int) -> datetime:
    async with db.connect() as conn:
        at = (
            await conn.execute(
                sa.select(deliveries.c.confirmed_at).where(
                    deliveries.c.item_id == item_id, deliveries.c.channel == "website"
                )
            )
        ).scalar_one()
    assert isinstance(at, datetime)
    return at


async def test_every_version_gets_its_verdict(
    api: Client, make_token: TokenFactory, released: dict[str, int], db: Database,
    dispatch_settings: Settings,
) -> None:  # fmt: skip
    auditor = await make_token("auditor", holder="审计", agency=CENTER)
    body = await _rows(api, auditor)
    rows = {r["item_id"]: r for r in body["rows"]}
    index = WorkdayIndex(build_rules(dispatch_settings).calendar)
    assert body["ledger"]["verified"] is True and body["ledger"]["through_event"] > 0
    assert body["as_of"] == TODAY.isoformat()

    on_time = rows[released["on_time"]]
    assert on_time["verdict"] == "on_time" and on_time["ledger"] == "ok"
    assert on_time["deadline"] == (TODAY + timedelta(days=3)).isoformat() or on_time["deadline"]
    published = (await _website_time(db, released["on_time"])).astimezone(SHANGHAI).date()
    assert on_time["working_days_taken"] == index.between(TODAY, published)
    assert set(on_time["channels"]) == {"feeds"}
    assert on_time["rule"]["basis"] and on_time["start"] == TODAY.isoformat()
    publicity = on_time["publicity"]  # 3 days at least: from tomorrow, so 8 days is enough
    assert publicity["ok"] is True and publicity["start"] == (TODAY + timedelta(1)).isoformat()
    assert publicity["shortest_end"] <= publicity["end"]

    late = rows[released["late"]]
    deadline = date.fromisoformat(late["deadline"])
    published = (await _website_time(db, released["late"])).astimezone(SHANGHAI).date()
    assert late["verdict"] == "late" and late["late_reason"] == "评标报告延迟送达"
    assert late["late_by"] == max(1, index.between(deadline, published))

    due = rows[released["due"]]
    assert (due["verdict"], due["published_at"]) == ("due", None)
    assert due["due_in"] == index.between(TODAY, date.fromisoformat(due["deadline"]))

    overdue = rows[released["overdue"]]
    assert overdue["verdict"] == "overdue" and overdue["late_reason"] == "材料不全"
    assert overdue["late_by"] == max(1, index.between(date.fromisoformat(overdue["deadline"]),
                                                      TODAY))  # fmt: skip


async def test_filters_pages_and_scopes(
    api: Client, make_token: TokenFactory, released: dict[str, int]
) -> None:
    auditor = await make_token("auditor", holder="审计", agency=CENTER)
    assert [r["item_id"] for r in (await _rows(api, auditor, status="overdue"))["rows"]] == [
        released["overdue"]
    ]
    first = await _rows(api, auditor, limit="2")
    assert len(first["rows"]) == 2 and first["next"]
    second = await _rows(api, auditor, limit="2", cursor=first["next"])
    seen = [r["item_id"] for r in first["rows"] + second["rows"]]
    assert seen == sorted(released.values())
    editor = await make_token("editor", holder="编辑")
    assert len((await _rows(api, editor))["rows"]) == 4  # their own agency's
    other = await api.get("/api/v1/audit/timeliness", params={"agency": "11990100MB0000001A"},
                          headers=editor)  # fmt: skip
    assert other.status == 403
    for bad in ({"status": "lost"}, {"from": "2026-13-01"}, {"cursor": "x"}, {"limit": "0"},
                {"from": "2026-12-01", "to": "2026-11-01"}, {"format": "xml"}):  # fmt: skip
        response = await api.get("/api/v1/audit/timeliness", params=bad, headers=auditor)
        assert response.status == 422, (bad, await response.text())
    assert (await api.get("/api/v1/audit/timeliness")).status == 401


async def test_a_rewritten_publication_time_is_flagged(
    api: Client, make_token: TokenFactory, released: dict[str, int], db: Database
) -> None:
    earlier = await _website_time(db, released["late"]) - timedelta(days=10)
    async with db.transaction() as conn:  # as someone with the database's password might
        await conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.item_id == released["late"], deliveries.c.channel == "website")
            .values(confirmed_at=earlier)
        )
    auditor = await make_token("auditor", holder="审计", agency=CENTER)
    rows = {r["item_id"]: r for r in (await _rows(api, auditor))["rows"]}
    assert rows[released["late"]]["ledger"] == "mismatch"
    assert rows[released["on_time"]]["ledger"] == "ok"


async def test_csv_opens_in_a_spreadsheet(
    api: Client, make_token: TokenFactory, released: dict[str, int]
) -> None:
    auditor = await make_token("auditor", holder="审计", agency=CENTER)
    response = await api.get("/api/v1/audit/timeliness", params={"format": "csv"},
                             headers=auditor)  # fmt: skip
    assert response.status == 200 and response.content_type == "text/csv"
    assert response.headers["X-Ledger-Verified"] == "true"
    raw = await response.read()
    assert raw.startswith("\ufeff".encode())
    table = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(table) == 4 and "事项编号" in table[0] and "结论" in table[0]
    verdicts = {int(r["事项编号"]): r["结论"] for r in table}
    assert verdicts[released["overdue"]] == "逾期未发布"
    assert verdicts[released["on_time"]] == "按时"
    titles = {int(r["事项编号"]): r["标题"] for r in table}
    assert titles[released["late"]].startswith("'=HYPERLINK")  # not a formula


async def test_summary_and_annual(
    api: Client, make_token: TokenFactory, released: dict[str, int]
) -> None:
    auditor = await make_token("auditor", holder="审计", agency=CENTER)
    response = await api.get("/api/v1/audit/summary", headers=auditor)
    assert response.status == 200, await response.text()
    summary = await response.json()
    totals = summary["totals"]
    assert (totals["total"], totals["on_time"], totals["late"], totals["due"],
            totals["overdue"]) == (4, 1, 1, 1, 1)  # fmt: skip
    assert totals["on_time_rate"] == round(1 / 3, 4)  # the due one is not judged yet
    [agency] = summary["by_agency"]
    assert agency["agency"] == CENTER and agency["total"] == 4
    channels = {c["channel"]: c for c in summary["by_channel"]}
    assert channels["website"]["on_time"] == 1 and channels["website"]["late"] == 1
    assert sum(b["versions"] for b in summary["working_days_taken"]) == 2

    response = await api.get("/api/v1/audit/annual", params={"year": str(TODAY.year)},
                             headers=auditor)  # fmt: skip
    assert response.status == 200, await response.text()
    annual = await response.json()
    assert annual["published_total"] == 2
    [row] = annual["by_category"]
    assert (row["category"], row["published"], row["category_name"]) == (
        "bid_candidates", 2, row["category_name"] or "?")  # fmt: skip
    assert {d["decision"]: d["disclosed"] for d in annual["decisions"]} == {
        "administrative_permit": 0, "administrative_penalty": 0}  # fmt: skip
    csv_answer = await api.get("/api/v1/audit/annual",
                               params={"year": str(TODAY.year), "format": "csv"},
                               headers=auditor)  # fmt: skip
    text = (await csv_answer.read()).decode("utf-8-sig")
    assert "网站首次公开事项合计,2" in text and "按时公开率" in text
    assert (await api.get("/api/v1/audit/annual", headers=auditor)).status == 422


def test_a_penalty_withdrawal_is_judged_in_three_working_days() -> None:
    # covered by tests/test_verdicts.py; here the 3 working days come from period_end
    from dispatcher.rules.calendar import WorkCalendar

    assert period_end(WorkCalendar(), date(2026, 9, 30), 3, "working_days")[0] == date(2026, 10, 10)


async def test_metrics_gauge_what_is_due_soon_and_overdue(
    api: Client, released: dict[str, int]
) -> None:
    text = await (await api.get("/metrics")).text()
    labels = f'agency="{CENTER}",domain="bidding"'
    assert f"gongkai_audit_overdue{{{labels}}} 1.0" in text
    assert f"gongkai_audit_due_soon{{{labels}}} 1.0" in text


async def test_a_short_publicity_period_is_shown(
    api: Client, make_token: TokenFactory, db: Database, agencies: list[str],
    dispatch_settings: Settings,
) -> None:  # fmt: skip
    # Bid candidates are shown for at least 3 days (招标投标法实施条例 第五十四条): from
    # tomorrow to the day after is 1, accepted only with a reason, and the audit says so.
    start, end = TODAY + timedelta(days=1), TODAY + timedelta(days=2)
    fields = {**bid_candidates()["fields"], "publicity_start": start.isoformat(),
              "publicity_end": end.isoformat()}  # fmt: skip
    item = bid_candidates(formed_on=TODAY.isoformat(), fields=fields, late_reason="紧急项目")
    item_id, _ = await workflow.submit(db, build_rules(dispatch_settings), EDITOR, item)
    auditor = await make_token("auditor", holder="审计", agency=CENTER)
    [row] = (await _rows(api, auditor))["rows"]
    assert row["item_id"] == item_id
    shortest = period_end(build_rules(dispatch_settings).calendar, start, 3, "days")[0]
    assert row["publicity"]["ok"] is False
    assert row["publicity"]["shortest_end"] == shortest.isoformat()


async def test_the_withdrawal_of_a_changed_penalty_is_judged(
    api: Client, make_token: TokenFactory, db: Database, agencies: list[str],
    dispatch_settings: Settings,
) -> None:  # fmt: skip
    """行政处罚法 art. 48: a penalty decision changed or revoked is withdrawn within 3 working
    days of the change; a withdrawal of anything else has no statutory limit (not judged)."""
    rules = build_rules(dispatch_settings)
    old = (TODAY - timedelta(days=20)).isoformat()
    penalty, _ = await workflow.submit(db, rules, EDITOR, bid_candidates(
        formed_on=old, decision="administrative_penalty", late_reason="补录"))  # fmt: skip
    other, _ = await workflow.submit(db, rules, EDITOR, fresh(project_code="E9901000001234570"))
    for item_id in (penalty, other):
        await workflow.approve(db, APPROVER, item_id)
    async with running_worker(dispatch_settings, dict(REGISTRY)):
        await wait_until(all_in(db, "published"))
        changed = TODAY - timedelta(days=10)
        revoked = {"reason": "复议撤销", "changed_on": changed.isoformat()}
        await workflow.withdraw(db, APPROVER, penalty, revoked)
        await workflow.withdraw(db, APPROVER, other, {"reason": "项目终止"})
        await wait_until(all_in(db, "published", "withdrawn"))
    auditor = await make_token("auditor", holder="审计", agency=CENTER)
    rows = (await _rows(api, auditor))["rows"]
    withdrawals = [r for r in rows if r["kind"] == "withdrawal"]
    [row] = withdrawals  # the other item's withdrawal is not judged
    index = WorkdayIndex(rules.calendar)
    deadline = period_end(rules.calendar, changed, 3, "working_days")[0]
    taken_down = (datetime.fromisoformat(row["published_at"])).astimezone(SHANGHAI).date()
    assert (row["item_id"], row["start"], row["deadline"]) == (
        penalty, changed.isoformat(), deadline.isoformat())  # fmt: skip
    assert "行政处罚法" in row["rule"]["basis"]
    assert row["verdict"] == "late"
    assert row["late_by"] == max(1, index.between(deadline, taken_down))
    bad = await api.post(f"/api/v1/items/{other}/withdraw", json={"reason": "x",
                         "changed_on": (TODAY + timedelta(1)).isoformat()},
                         headers=await make_token("approver", holder="审核"))  # fmt: skip
    assert bad.status in (409, 422)  # already withdrawn (409) is checked first or the date
