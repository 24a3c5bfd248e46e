"""Progress of long commands: plain lines when standard error is not a terminal, a tqdm bar when it
is; `ledger verify` and `site rebuild` report it on standard error, their result on standard out."""

from __future__ import annotations

import io
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from dispatcher.ops.cli import main
from dispatcher.ops.progress import Progress, is_terminal, progress
from dispatcher.rules.rulebook import Rules
from dispatcher.storage import ledger
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries, events
from tests.helpers import approved_deliveries


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_every_tenth_and_a_final_line() -> None:
    out, clock = io.StringIO(), Clock()
    with Progress(306191, "ledger verify", unit="events", stream=out, clock=clock) as bar:
        for _ in range(306):
            bar.advance(1000)  # no time passes: only the tenths are reported
        clock.now += 12.34
        bar.advance(191)

    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0] == "ledger verify: 31000/306191 events (10%)"
    assert lines[-2] == "ledger verify: 276000/306191 events (90%)"
    assert lines[-1] == "ledger verify: 306191/306191 events in 12.3 s"
    assert len(lines) == 10  # nine tenths and the end: never one line per batch


def test_plain_lines_at_most_every_interval_when_the_total_is_unknown() -> None:
    out, clock = io.StringIO(), Clock()
    with Progress(None, "site rebuild", unit="publications", stream=out, clock=clock) as bar:
        for _ in range(100):
            clock.now += 0.5
            bar.advance(10)

    lines = out.getvalue().splitlines()
    assert lines[0] == "site rebuild: 40 publications"  # after 2 s
    assert lines[-1] == "site rebuild: 1000 publications in 50.0 s"
    assert len(lines) == 50 // 2 + 1


def test_an_error_ends_without_a_final_line() -> None:
    out = io.StringIO()
    with pytest.raises(RuntimeError), Progress(10, "feeds rebuild", stream=out) as bar:
        bar.advance(3)
        raise RuntimeError("disk full")
    assert out.getvalue() == "feeds rebuild: 3/10 items (30%)\n"


def test_nothing_to_do_still_says_so_once() -> None:
    out = io.StringIO()
    with Progress(0, "site rebuild", unit="publications", stream=out):
        pass
    assert out.getvalue().startswith("site rebuild: 0/0 publications in ")


def test_on_standard_error_by_default_and_plain_when_it_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with progress(2, "audit", unit="items") as bar:
        bar.advance()
        bar.advance()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("audit: 1/2 items (50%)\naudit: 2/2 items in ")


def test_on_a_terminal_it_is_a_tqdm_bar() -> None:
    term = Terminal()
    assert is_terminal(term) and not is_terminal(io.StringIO())
    with Progress(100, "ledger verify", unit="events", stream=term, delay=0) as bar:
        for _ in range(100):
            bar.advance()
    shown = term.getvalue()
    assert "\r" in shown and "ledger verify: 100%|" in shown and "100/100" in shown
    assert shown.endswith("\n")


def test_a_bar_is_fed_in_batches_not_per_item() -> None:
    term, clock = Terminal(), Clock()
    with Progress(None, "site rebuild", stream=term, delay=0, clock=clock) as bar:
        for _ in range(100_000):
            bar.advance()  # the clock stands still: nothing is due
        assert term.getvalue().count("\r") <= 1  # at most tqdm's first draw
        clock.now += 1
        bar.advance()
    assert "100001" in term.getvalue().rsplit("\r", 1)[-1]


def test_a_bar_that_finishes_quickly_is_never_drawn() -> None:
    term = Terminal()
    with progress(5, "ledger verify", stream=term) as bar:
        bar.advance(5)
    assert term.getvalue() == ""


def test_advanced_from_other_threads() -> None:
    out = io.StringIO()
    with Progress(8000, "site rebuild", stream=out) as bar:
        workers = [
            threading.Thread(target=lambda: [bar.advance() for _ in range(1000)]) for _ in range(8)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert bar.count == 8000
    assert out.getvalue().splitlines()[-1].startswith("site rebuild: 8000/8000 items in ")


# The commands, on the test database (SQLite; PostgreSQL too when TEST_DATABASE_URL is set).


@pytest.fixture
async def published(
    db: Database,
    rules: Rules,
    agencies: list[str],
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three items live on the website and the feeds; the command line pointed at them."""
    await approved_deliveries(db, rules, 3)
    start = datetime.now(UTC) - timedelta(hours=1)
    async with db.transaction() as conn:
        ids = [r.id for r in await conn.execute(sa.select(deliveries.c.id))]
        for n, delivery in enumerate(ids):
            await conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.id == delivery)
                .values(status="published", confirmed_at=start + timedelta(seconds=n))
            )
    for name in ("REDIS_URL", "GONGKAI_CONFIG", "TEST_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("GONGKAI_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.chdir(tmp_path)


def test_ledger_verify_shows_progress_on_stderr(
    published: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ledger", "verify"]) == 0
    captured = capsys.readouterr()
    [result] = captured.out.splitlines()
    assert result.startswith("ledger intact: ") and result.endswith(" events verified")
    checked = int(result.split()[2])
    assert checked >= 6  # submitted and approved, three times
    assert f"ledger verify: {checked}/{checked} events in " in captured.err
    assert "\r" not in captured.err


@pytest.mark.parametrize(("command", "channel"), [("site", "website"), ("feeds", "feeds")])
def test_rebuild_shows_progress_on_stderr(
    published: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    channel: str,
) -> None:
    shutil.rmtree(tmp_path / "var" / "site", ignore_errors=True)
    assert main([command, "rebuild"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("rebuilt ")
    assert f" from 3 {channel} publications in " in captured.out
    lines = captured.err.splitlines()
    assert lines[0] == f"{command} rebuild: 1/3 publications (33%)"
    assert lines[-1].startswith(f"{command} rebuild: 3/3 publications in ")
    assert "\r" not in captured.err


async def test_verify_reports_every_event_it_checked(
    db: Database, rules: Rules, agencies: list[str]
) -> None:
    await approved_deliveries(db, rules, 2)
    seen: list[int] = []
    async with db.connect() as conn:
        total = await ledger.count(conn)
        assert (await ledger.verify(conn, on_progress=seen.append)).checked == total == sum(seen)
    async with db.transaction() as conn:
        await conn.execute(sa.update(events).where(events.c.seq == 3).values(actor="forger"))
    seen.clear()
    async with db.connect() as conn:
        report = await ledger.verify(conn, on_progress=seen.append)
    assert (report.broken_seq, report.checked, sum(seen)) == (3, 2, 2)
