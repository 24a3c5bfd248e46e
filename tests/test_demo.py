"""`gongkai demo` as a person runs it: a real process, a real port, items from all domains; and
the sample items, moved to the day the demo runs, lawful on any day."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dispatcher.ops import demo
from dispatcher.rules import intake
from dispatcher.rules.calendar import WorkCalendar
from dispatcher.rules.catalogue import load_catalogue
from dispatcher.rules.deadlines import today
from dispatcher.rules.permissions import publishing_agency
from dispatcher.rules.rulebook import Rules
from dispatcher.storage.db import Database
from dispatcher.storage.models import items
from tests.helpers import free_port
from tests.processes import until

RULES = Rules(load_catalogue(), WorkCalendar(), ("website", "feeds"))


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GONGKAI_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(GONGKAI_PORT=str(port), GONGKAI_DATA_DIR=str(tmp_path / "var"))
    return env


def _get(url: str, token: str | None = None) -> dict[str, object]:
    request = urllib.request.Request(url)  # noqa: S310 - http://127.0.0.1 only
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        data: dict[str, object] = json.load(response)
        return data


@pytest.mark.timeout(90)
def test_demo_serves_sample_items_from_all_six_domains(tmp_path: Path) -> None:
    port = free_port()
    script = Path(sys.executable).with_name("gongkai")
    output: list[str] = []
    with subprocess.Popen(  # noqa: S603 - our own console script
        [str(script), "demo"], cwd=tmp_path, env=_env(tmp_path, port),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as process:  # fmt: skip
        _check_running_demo(process, port, output)
    assert process.returncode == 0, "".join(output)
    _check_database(tmp_path, script, port)


def _check_running_demo(process: subprocess.Popen[str], port: int, output: list[str]) -> None:
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if "serving the API" in line:
                break
        text = "".join(output)
        assert f"serving the API and a worker on http://127.0.0.1:{port}/api/v1/" in text, text
        auditor = re.search(r"auditor\s+(gk_\S+)", text)
        assert auditor, text
        base = f"http://127.0.0.1:{port}/api/v1"
        catalogue = _get(f"{base}/catalogue")
        assert len(catalogue["domains"]) == 6  # type: ignore[arg-type]
        listing = _get(f"{base}/items", auditor[1])
        assert listing["items"], listing
        # The worker delivers the approved items to the website and the feeds by itself.
        first = listing["items"][-1]["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            item = _get(f"{base}/items/{first}", auditor[1])
            states = {d["status"] for d in item["versions"][0]["deliveries"]}  # type: ignore[index]
            if states == {"published"}:
                break
            time.sleep(0.2)
        assert states == {"published"}, item
        # Once every sample due now is on the website, the audit finds one late (the
        # procurement contract, formed two weeks before the demo's day, with its reason) and
        # the rest on time; scheduled ones are still due.
        scheduled = sum(1 for it in demo.demo_items() if it.get("publish_at"))
        totals: dict[str, int] = {}

        def settled() -> bool:
            totals.update(_get(f"{base}/audit/summary", auditor[1])["totals"])  # type: ignore[arg-type]
            return totals["due"] <= scheduled and totals["overdue"] == 0

        until(settled, 60, "every sample due now is on the website")
        assert totals["late"] == 1 and totals["on_time"] >= 10, totals
        # Items whose categories go to WeChat are published on the sandbox account too.
        page = re.search(r"WeChat sandbox: (http://127\.0\.0\.1:\d+/sandbox/)", text)
        assert page, text
        deadline, overview = time.monotonic() + 30, ""
        while time.monotonic() < deadline and 'href="/s/' not in overview:
            with urllib.request.urlopen(page[1], timeout=10) as response:  # noqa: S310
                overview = response.read().decode()
            time.sleep(0.2)
        assert "微信公众号沙箱" in overview and 'href="/s/' in overview
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        assert process.stdout is not None
        output.append(process.stdout.read())


def _check_database(tmp_path: Path, script: Path, port: int) -> None:
    assert (tmp_path / "var" / "site" / "feeds" / "all.atom").is_file()
    assert list((tmp_path / "var" / "site" / "items").glob("*.html"))
    with closing(sqlite3.connect(tmp_path / "var" / "gongkai.db")) as db:
        domains = {row[0] for row in db.execute("SELECT DISTINCT domain FROM items")}
        states = dict(db.execute("SELECT status, count(*) FROM items GROUP BY status").fetchall())
        withheld = db.execute("SELECT count(*) FROM item_versions WHERE withheld != '[]'")
        assert withheld.fetchone()[0] >= 1
        count = db.execute("SELECT count(*) FROM items").fetchone()[0]
    assert domains == {"housing", "land", "mining", "procurement", "state_assets", "bidding"}
    assert set(states) == {"approved", "scheduled"}
    assert states["scheduled"] == 1

    # Running it again adds nothing twice.
    again = subprocess.run(  # noqa: S603
        [str(script), "demo", "--no-serve"], cwd=tmp_path, env=_env(tmp_path, port),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    with closing(sqlite3.connect(tmp_path / "var" / "gongkai.db")) as db:
        assert db.execute("SELECT count(*) FROM items").fetchone()[0] == count


# --- the sample items, moved to the day the demo runs ---


def test_only_exact_dates_move() -> None:
    item = {
        "title": "2026-11-27 挂牌公告", "document_number": "示〔2026-11-27〕1号",
        "body_html": "<p>2026-11-27</p>", "formed_on": "2026-11-26",
        "publish_at": "2026-12-01T09:00:00+08:00",
        "fields": {"bidding_start": "2026-12-21", "note": "2026-12-21至2026-12-31",
                   "count": 20, "rows": [{"completed_on": "2026-02-27"}]},
    }  # fmt: skip
    [moved] = demo.shift_dates([item], 3)
    assert moved == item | {
        "formed_on": "2026-11-29",
        "publish_at": "2026-12-04T09:00:00+08:00",
        "fields": {"bidding_start": "2026-12-24", "note": "2026-12-21至2026-12-31",
                   "count": 20, "rows": [{"completed_on": "2026-03-02"}]},
    }  # fmt: skip
    assert demo.shift_dates([item], 0) == [item]
    assert item["formed_on"] == "2026-11-26"  # the input is left alone


def test_on_the_anchor_day_the_items_are_as_written() -> None:
    assert demo.sample_items(RULES, demo.ANCHOR) == demo.demo_items()


def test_a_publicity_period_a_weekend_shortens_is_lengthened() -> None:
    # As written (a Friday), the candidates' publicity runs Friday to Monday. Moved two days
    # earlier it would run Wednesday to Saturday, a rest day: it ends on Monday instead.
    def publicity(on: date) -> tuple[str, str]:
        [found] = [i for i in demo.sample_items(RULES, on) if i["category"] == "bid_candidates"]
        return found["fields"]["publicity_start"], found["fields"]["publicity_end"]

    assert publicity(demo.ANCHOR) == ("2026-11-27", "2026-11-30")
    assert publicity(date(2026, 11, 25)) == ("2026-11-25", "2026-11-30")  # Wed + 3 = Sat: Mon
    assert publicity(date(2026, 9, 30)) == ("2026-09-30", "2026-10-08")  # into National Day


def _release(item: dict[str, Any], day: date) -> date:
    at = item["publish_at"]
    return day if at is None else datetime.fromisoformat(at).date()


@pytest.mark.timeout(120)
def test_the_sample_items_are_lawful_on_any_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every day of 2026 (the official calendar, with its holidays) and into 2027 (no calendar
    yet: Monday to Friday): intake accepts every item, none was formed in the future, and each
    is on time, except the one sample that is late on purpose (for the audit), with its reason:
    it is late whatever the day, even across the Spring Festival."""
    day = date(2026, 1, 1)
    monkeypatch.setattr(intake, "today", lambda: day)
    while day <= date(2027, 3, 31):
        for item in demo.sample_items(RULES, day):
            category = RULES.catalogue.category(item["domain"], item["category"])
            assert category is not None
            agency = publishing_agency(category, item)
            assert agency is not None
            draft = intake.check_item(item, RULES, agency)
            assert date.fromisoformat(item["formed_on"]) <= day
            on_time = draft.values["deadline"] >= _release(item, day)
            assert on_time is (item["late_reason"] is None), (day, item["category"])
        day += timedelta(days=1)


async def test_running_the_demo_on_another_day_adds_nothing(db: Database, rules: Rules) -> None:
    first = await demo.load_demo(db, rules)
    again = await demo.load_demo(db, rules, on=today() + timedelta(days=3))
    assert again["items"] == first["items"]
    async with db.connect() as conn:
        count = await conn.scalar(sa.select(sa.func.count()).select_from(items))
    assert count == len(demo.demo_items())
