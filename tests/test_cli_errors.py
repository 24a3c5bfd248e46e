"""Every `gongkai` command, run with a bad setting that reaches its own work, says `error: …`
on standard error and exits 1: no traceback, whatever the setting (the one error root)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dispatcher.ops.cli import build_parser, main
from tests.helpers import bid_candidates

MISSING_CALENDAR = {"GONGKAI_CALENDAR_OVERRIDES": "/nonexistent/calendar.toml"}
UNSUPPORTED_DB = {"DATABASE_URL": "mysql://root@127.0.0.1/test"}
UNREACHABLE_DB = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/test"}
NOT_A_URL = {"DATABASE_URL": "postgresql://user:s3cret@host:port/db"}
BAD_PORT = {"GONGKAI_PORT": "eighty"}
WECHAT_UNCONFIGURED = {"GONGKAI_CHANNELS": "website,feeds,wechat"}
DATA_DIR_IS_A_FILE = {"GONGKAI_DATA_DIR": "{tmp}/not-a-dir"}
BAD_OUTLET_SECRET = {"GONGKAI_CHANNELS": "website,media:x", "GONGKAI_MEDIA_X_URL": "http://127.0.0.1:9/",
                     "GONGKAI_MEDIA_X_SECRET": "s3cret"}  # fmt: skip

AGENCY = ["agency", "add", "--code", "12990100MB0000004D", "--name", "中心", "--region", "990100"]
TOKEN = ["token", "create", "--agency", "12990100MB0000004D", "--role", "editor", "--holder", "甲"]

# (command line, bad setting, what the message says)
CASES: list[tuple[list[str], dict[str, str], str]] = [
    (["serve"], MISSING_CALENDAR, "cannot read calendar overrides"),
    (["serve"], WECHAT_UNCONFIGURED, "GONGKAI_WECHAT_APPID"),
    (["serve"], UNREACHABLE_DB, "cannot reach the database"),
    (["serve", "--no-worker"], DATA_DIR_IS_A_FILE, "cannot run Redis in"),
    (["worker"], MISSING_CALENDAR, "cannot read calendar overrides"),
    (["worker"], WECHAT_UNCONFIGURED, "GONGKAI_WECHAT_APPID"),
    (["demo", "--no-serve"], MISSING_CALENDAR, "cannot read calendar overrides"),
    (["demo", "--no-serve"], UNSUPPORTED_DB, "unsupported database 'mysql'"),
    (["migrate"], UNSUPPORTED_DB, "unsupported database 'mysql'"),
    (["migrate"], UNREACHABLE_DB, "cannot reach the database"),
    (["migrate"], NOT_A_URL, "the database URL is not a URL"),
    (["catalogue"], BAD_PORT, "server.port"),
    (["deadline", "2026-09-30"], MISSING_CALENDAR, "cannot read calendar overrides"),
    (AGENCY, UNREACHABLE_DB, "cannot reach the database"),
    (TOKEN, UNSUPPORTED_DB, "unsupported database"),
    (["token", "list"], UNREACHABLE_DB, "cannot reach the database"),
    (["token", "revoke", "1"], UNSUPPORTED_DB, "unsupported database"),
    (["submit", "{tmp}/item.json"], MISSING_CALENDAR, "cannot read calendar overrides"),
    (["approve", "1"], UNREACHABLE_DB, "cannot reach the database"),
    (["retry", "1"], UNSUPPORTED_DB, "unsupported database"),
    (["ledger", "verify"], UNREACHABLE_DB, "cannot reach the database"),
    (["site", "rebuild"], MISSING_CALENDAR, "cannot read calendar overrides"),
    (["site", "rebuild"], DATA_DIR_IS_A_FILE, "cannot write the site under"),
    (["site", "nginx-conf"], BAD_PORT, "server.port"),
    (["site", "nginx-conf", "--app", "no-port"], {}, "--app must be host:port"),
    (["site", "nginx-conf", "--site-dir", "a b"], {}, "characters nginx would split on"),
    (["worker", "--channels", "website"], {}, "website, feeds share a queue"),
    (["feeds", "rebuild"], MISSING_CALENDAR, "cannot read calendar overrides"),
    (["feeds", "rebuild"], DATA_DIR_IS_A_FILE, "cannot write the site under"),
    (["media", "secret"], BAD_PORT, "server.port"),
    (["audit"], UNREACHABLE_DB, "cannot reach the database"),
    (["audit", "summary"], MISSING_CALENDAR, "cannot read calendar overrides"),
    (["audit", "annual", "--year", "2026"], UNSUPPORTED_DB, "unsupported database"),
    (["audit", "--from", "2026-02-30"], UNREACHABLE_DB, "from: invalid date"),
    (["deadlines", "refresh"], MISSING_CALENDAR, "cannot read calendar overrides"),
    (["serve"], MISSING_CALENDAR, "cannot read calendar overrides"),
    (["serve"], BAD_OUTLET_SECRET, "channels.media.x.secret: Value error, must start with whsec_"),
]


@pytest.fixture
def workdir(tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated SQLite database, a data directory, an item file; no Redis from outside."""
    shutil.copy(sqlite_template, tmp_path / "cli.db")
    (tmp_path / "not-a-dir").write_text("a file where the data directory should be")
    (tmp_path / "item.json").write_text(json.dumps(bid_candidates()), encoding="utf-8")
    for name in ("REDIS_URL", "GONGKAI_CONFIG", "TEST_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("GONGKAI_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "bad", "message"), CASES, ids=[f"{' '.join(c[0][:2])}-{c[2]}" for c in CASES]
)
def test_a_bad_setting_is_an_error_line_not_a_traceback(
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    bad: dict[str, str],
    message: str,
) -> None:
    for name, value in bad.items():
        monkeypatch.setenv(name, value.format(tmp=workdir))
    code = main([arg.format(tmp=workdir) for arg in argv])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("error: "), err
    assert message in err
    assert "Traceback" not in err
    assert "s3cret" not in err  # a password in a URL is never printed


def test_every_command_is_covered() -> None:
    commands = set(build_parser().get_default("commands"))
    assert len(commands) == 22
    covered = {
        " ".join(a for a in argv[:2] if a[:1].isalpha() and a.replace("-", "").isalpha())
        for argv, _, _ in CASES
    }
    assert commands - covered == set()
