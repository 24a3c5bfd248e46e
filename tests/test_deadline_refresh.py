"""A calendar override for a new year recomputes every provisional deadline
(dispatcher/items/deadline_refresh.py): the rows change, the ledger says why, verdicts follow.

Every expected date below is counted by hand, never with the code under test.

2026     chinese_calendar 1.11 knows it; no holiday from Dec 20 to Dec 31 (Thu).
2027     No data (a fixture hides it even from a chinese_calendar that has it): Monday to Friday,
         provisional; so Fri Jan 1 2027 counts as a working day.
OVERRIDE [2027] holidays Jan 1 - Jan 3 (Fri - Sun), no make-up day: Mon Jan 4 is the first
         working day of 2027.

"Today" is frozen at Wed 2026-12-30, so that items formed in the last days of 2026 have deadlines
in 2027 whatever the real date is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from dispatcher.items import deadline_refresh, queries, workflow
from dispatcher.items.deadline_refresh import ACTOR, EVENT_KIND, Change, refresh_provisional
from dispatcher.rules import calendar, intake
from dispatcher.rules.limits import DECISIONS
from dispatcher.rules.rulebook import Rules, build_rules
from dispatcher.settings import Settings, load_settings
from dispatcher.storage import ledger
from dispatcher.storage.db import Database, _alembic_config
from dispatcher.storage.models import deliveries, events, item_versions
from tests.helpers import APPROVER, EDITOR, bid_candidates

TODAY = date(2026, 12, 30)
OVERRIDE = '[2027]\nholidays = ["2027-01-01..2027-01-03"]\n'
BOTH = {"2026": "chinese_calendar", "2027": "overrides"}
BOTH_REASON = "calendar overrides cover 2027; chinese_calendar covers 2026"


@pytest.fixture(autouse=True)
def frozen_today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intake, "today", lambda: TODAY)
    monkeypatch.setattr(workflow, "today", lambda: TODAY)


@pytest.fixture(autouse=True)
def no_library_data_for_2027(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """chinese_calendar 1.11 has no 2027; this keeps the tests true once a release has it."""
    library = calendar._library_schedule
    monkeypatch.setattr(
        calendar, "_library_schedule", lambda year: None if year >= 2027 else library(year)
    )
    yield


@pytest.fixture
def rules_2027(settings: Settings, tmp_path: Path) -> Rules:
    """The rules rebuilt after `[calendar] overrides` points at a file declaring 2027."""
    path = tmp_path / "calendar-overrides.toml"
    path.write_text(OVERRIDE, encoding="utf-8")
    return rebuilt(settings, tmp_path, path)


def rebuilt(settings: Settings, tmp_path: Path, overrides: Path) -> Rules:
    """`build_rules` with `GONGKAI_CALENDAR_OVERRIDES` set, as a restarted process has them."""
    env = {
        "DATABASE_URL": settings.storage.database_url,
        "GONGKAI_DATA_DIR": str(tmp_path / "var"),
        "GONGKAI_CALENDAR_OVERRIDES": str(overrides),
    }
    return build_rules(load_settings(env=env, path=None))


async def submit(db: Database, rules: Rules, **changes: Any) -> int:
    item_id, _ = await workflow.submit(db, rules, EDITOR, bid_candidates(**changes))
    return item_id


def candidates_on(formed_on: str) -> dict[str, Any]:
    """中标候选人: within 3 days (民法典: a period ending on a rest day ends on the next working
    day); its 3-day publicity from Dec 30 must end on Mon Jan 4 or later."""
    fields = bid_candidates()["fields"]
    fields.update(publicity_start="2026-12-30", publicity_end="2027-01-08")
    return {"formed_on": formed_on, "fields": fields}


def notice(bid_deadline: str, **changes: Any) -> dict[str, Any]:
    """招标公告: at least 20 days before the bid deadline."""
    return {"category": "bid_notice", "formed_on": "2026-12-29", "withheld": [],
            "fields": {"bid_deadline": bid_deadline}, **changes}  # fmt: skip


def prequalification(formed_on: str, **changes: Any) -> dict[str, Any]:
    """资格预审结果: 20 working days (政府信息公开条例 art. 26)."""
    return {"category": "prequalification_result", "formed_on": formed_on, "withheld": [],
            "fields": {}, **changes}  # fmt: skip


async def stored(db: Database, item_id: int, version: int = 1) -> tuple[str, bool, Any]:
    async with db.connect() as conn:
        row = (
            await conn.execute(
                sa.select(item_versions.c.deadline, item_versions.c.deadline_provisional,
                          item_versions.c.deadline_rule)
                .where(item_versions.c.item_id == item_id, item_versions.c.version == version)
            )
        ).one()  # fmt: skip
    return row.deadline.isoformat(), row.deadline_provisional, row.deadline_rule


async def recomputed_events(db: Database) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        seqs = (
            await conn.execute(sa.select(events.c.item_id).where(events.c.kind == EVENT_KIND))
        ).all()
        found = []
        for item_id in sorted({r.item_id for r in seqs}):
            found += [e for e in await ledger.history(conn, item_id) if e["kind"] == EVENT_KIND]
    return found


async def ledger_ok(db: Database) -> bool:
    async with db.connect() as conn:
        return (await ledger.verify(conn)).ok


async def count_events(db: Database) -> int:
    async with db.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(events)) or 0)


async def on_time(db: Database, item_id: int) -> bool | None:
    async with db.connect() as conn:
        found = await queries.item_json(conn, APPROVER, item_id)
    verdict: bool | None = found["versions"][0]["on_time"]
    return verdict


async def test_an_override_for_2027_recomputes_each_provisional_deadline_once(
    db: Database,
    rules: Rules,
    rules_2027: Rules,
    agencies: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(deadline_refresh, "PAGE", 2)  # several pages for a handful of versions
    # Not provisional: Fri Nov 20 + 3 days = Mon Nov 23 (2026 is known).
    settled = await submit(db, rules)
    # Tue Dec 29 + 3 days = Fri Jan 1 2027, a working day by Monday to Friday: provisional.
    # With 2027 declared: Jan 1 - 3 are rest days, so the period ends on Mon Jan 4.
    late = await submit(db, rules, **candidates_on("2026-12-29"))
    # Sun Dec 20, 20 working days: Dec 21-25 (5), 28-31 (9), Fri Jan 1 (10), Jan 4-8 (15),
    # Jan 11-15 (20) = Fri Jan 15, provisional. With Jan 1 off: Jan 4-8 (14), Jan 11-15 (19),
    # Mon Jan 18 (20).
    general = await submit(db, rules, **prequalification("2026-12-20"))
    # A lead time: Jan 25 - 20 days = Tue Jan 5 2027, whatever the calendar: only the flag moves.
    lead = await submit(db, rules, **notice("2027-01-25"))
    # A permit with a lead time: the notice by Jan 28 - 20 = Fri Jan 8; the decision's 7 working
    # days from Dec 29: Dec 30 (1), 31 (2), Jan 1 (3), Jan 4-7 (7) = Thu Jan 7, earlier: it
    # wins. With Jan 1 off: Dec 30, 31, Jan 4-8 = Fri Jan 8, not earlier than the notice's Jan 8,
    # so the category's lead time sets the deadline now.
    permit = await submit(db, rules, **notice("2027-01-28", decision="administrative_permit"))
    await workflow.approve(db, APPROVER, late)
    # Its withdrawal (version 2) copies version 1's deadline, and is recomputed like it.
    await workflow.withdraw(db, APPROVER, permit, {"reason": "招标计划调整"})

    # The website published `late` on Mon Jan 4 at 10:00 Beijing time: late by Jan 1.
    async with db.transaction() as conn:
        await conn.execute(
            deliveries.update()
            .where(deliveries.c.item_id == late, deliveries.c.channel == "website")
            .values(status="published", confirmed_at=datetime(2027, 1, 4, 2, tzinfo=UTC))
        )
    assert await on_time(db, late) is False
    before = {i: await stored(db, i) for i in (settled, late, general, lead, permit)}
    assert [before[i][:2] for i in (late, general, lead, permit)] == [
        ("2027-01-01", True), ("2027-01-15", True), ("2027-01-05", True), ("2027-01-07", True)
    ]  # fmt: skip
    assert before[permit][2]["basis"] == DECISIONS.basis
    assert before[settled][:2] == ("2026-11-23", False)
    assert await refresh_provisional(db, rules) == []  # the same calendar: nothing to do
    events_before = await count_events(db)

    changes = await refresh_provisional(db, rules_2027)

    category = rules.catalogue.category("bidding", "bid_notice")
    assert category is not None
    lead_rule = {"version": 2, **category.time_limit.to_json(), "start": "2027-01-28"}
    assert (lead_rule["kind"], lead_rule["count"], lead_rule["unit"]) == ("lead", 20, "days")
    assert [(c.item_id, c.version) for c in changes] == [
        (late, 1), (general, 1), (lead, 1), (permit, 1), (permit, 2)
    ]  # fmt: skip
    by_key = {(c.item_id, c.version): c for c in changes}
    assert by_key[late, 1] == Change(
        late, 1, date(2027, 1, 1), True, date(2027, 1, 4), False, BOTH_REASON, BOTH
    )
    assert by_key[general, 1] == Change(
        general, 1, date(2027, 1, 15), True, date(2027, 1, 18), False, BOTH_REASON, BOTH
    )
    assert by_key[lead, 1] == Change(
        lead, 1, date(2027, 1, 5), True, date(2027, 1, 5), False,
        "calendar overrides cover 2027", {"2027": "overrides"},
    )  # fmt: skip
    for version in (1, 2):
        assert by_key[permit, version] == Change(
            permit, version, date(2027, 1, 7), True, date(2027, 1, 8), False, BOTH_REASON, BOTH,
            before[permit][2], lead_rule,
        )  # fmt: skip

    # The rows, and the verdict read from them.
    assert await stored(db, late) == ("2027-01-04", False, before[late][2])
    assert await stored(db, general) == ("2027-01-18", False, before[general][2])
    assert await stored(db, lead) == ("2027-01-05", False, before[lead][2])
    assert await stored(db, permit) == ("2027-01-08", False, lead_rule)
    assert await stored(db, permit, 2) == ("2027-01-08", False, lead_rule)
    assert await stored(db, settled) == before[settled]
    assert await on_time(db, late) is True

    # One ledger event per change, by the calendar, with the old and new values; chain intact.
    recorded = await recomputed_events(db)
    assert await count_events(db) == events_before + len(changes)
    assert [(e["version"], e["actor"]) for e in recorded] == [(1, ACTOR)] * 4 + [(2, ACTOR)]
    assert recorded[0]["data"] == {
        "old_deadline": "2027-01-01", "old_provisional": True,
        "new_deadline": "2027-01-04", "new_provisional": False,
        "reason": BOTH_REASON, "calendar": BOTH,
    }  # fmt: skip
    assert recorded[3]["data"]["old_rule"] == before[permit][2]
    assert recorded[3]["data"]["new_rule"] == lead_rule
    assert [e["data"] for e in recorded] == [c.to_json() for c in changes]
    assert await ledger_ok(db)

    # Again: nothing changes, nothing is appended.
    assert await refresh_provisional(db, rules_2027) == []
    assert await count_events(db) == events_before + len(changes)


async def test_versions_stored_by_rules_version_1_keep_their_rule(
    db: Database, rules: Rules, rules_2027: Rules, agencies: list[str]
) -> None:
    # 20 working days from Sun Dec 20 (as above): Jan 15, provisional; with 2027: Jan 18.
    general = await submit(db, rules, **prequalification("2026-12-20"))
    # A penalty: 7 working days from Tue Dec 29: Dec 30, 31, Jan 1, Jan 4-7 = Thu Jan 7; with
    # Jan 1 off: Dec 30, 31, Jan 4-8 = Fri Jan 8.
    penalty = await submit(
        db, rules, **prequalification("2026-12-29", decision="administrative_penalty")
    )

    def down_and_up(sync_conn: Any) -> None:
        config = _alembic_config()
        config.attributes["connection"] = sync_conn
        command.downgrade(config, "0003")  # as a database before the rules of version 2
        command.upgrade(config, "head")  # 0004 records "version 1" rules for every version

    async with db.transaction() as conn:
        await conn.run_sync(down_and_up)
    old = {i: await stored(db, i) for i in (general, penalty)}
    assert [old[i][:2] for i in (general, penalty)] == [("2027-01-15", True), ("2027-01-07", True)]
    assert [old[i][2]["version"] for i in (general, penalty)] == [1, 1]
    assert [old[i][2]["count"] for i in (general, penalty)] == [20, 7]

    changes = await refresh_provisional(db, rules_2027)

    assert [(c.item_id, c.new_deadline, c.new_provisional, c.new_rule) for c in changes] == [
        (general, date(2027, 1, 18), False, None), (penalty, date(2027, 1, 8), False, None)
    ]  # fmt: skip
    assert await stored(db, general) == ("2027-01-18", False, old[general][2])
    assert await stored(db, penalty) == ("2027-01-08", False, old[penalty][2])
    assert await ledger_ok(db)
    assert await refresh_provisional(db, rules_2027) == []


async def test_an_override_that_leaves_a_year_unknown_keeps_the_flag(
    db: Database, settings: Settings, agencies: list[str], tmp_path: Path
) -> None:
    """An override that replaces 2026 moves a deadline that still reaches into unknown 2027."""
    rules = build_rules(settings)
    # 20 working days from Sun Dec 20 (as above): Jan 15, provisional.
    general = await submit(db, rules, **prequalification("2026-12-20"))
    rule = (await stored(db, general))[2]
    path = tmp_path / "replace-2026.toml"
    path.write_text('[2026]\nholidays = ["2026-12-31"]\n', encoding="utf-8")
    replaced = rebuilt(settings, tmp_path, path)
    # Dec 31 off: Dec 21-25 (5), 28-30 (8), Jan 1 (9), Jan 4-8 (14), Jan 11-15 (19), Mon Jan 18.
    [change] = await refresh_provisional(db, replaced)
    assert (change.new_deadline, change.new_provisional) == (date(2027, 1, 18), True)
    assert change.reason == (
        "calendar overrides cover 2026; no official data for 2027 yet (Monday to Friday)"
    )
    assert await stored(db, general) == ("2027-01-18", True, rule)
    assert await refresh_provisional(db, replaced) == []


async def test_two_refreshes_at_once_record_each_change_once(
    db: Database, rules: Rules, rules_2027: Rules, agencies: list[str]
) -> None:
    """Serve and the worker may start together: each change is made and recorded once."""
    # All four provisional and all moved by Jan 1 2027 becoming a holiday.
    days = ("2026-12-18", "2026-12-20", "2026-12-21", "2026-12-29")
    ids = [await submit(db, rules, **prequalification(day)) for day in days]
    first, second = await asyncio.gather(
        refresh_provisional(db, rules_2027), refresh_provisional(db, rules_2027)
    )
    assert sorted(c.item_id for c in [*first, *second]) == ids
    assert len(await recomputed_events(db)) == len(ids)
    assert await ledger_ok(db)
