"""The `gongkai` command, in-process on a fresh SQLite file (and once as a real process)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from dispatcher.ops.cli import main
from tests.helpers import CENTER, bid_candidates


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "cli.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    monkeypatch.setenv("GONGKAI_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.chdir(tmp_path)
    return db


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_needs_migrate_first(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "agency", "add", "--code", CENTER, "--name", "中心", "--region", "990100"
    )
    assert code == 1
    assert "gongkai migrate" in err


def test_press_office_flow(
    cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "migrate")[1].strip() == "database at revision 0004"
    args = ("agency", "add", "--code", CENTER, "--name", "示范市公共资源交易中心", "--region")
    assert run(capsys, *args, "990100")[0] == 0
    code, _, err = run(capsys, *args, "990100")
    assert code == 1 and "already exists" in err
    code, _, err = run(
        capsys, "agency", "add", "--code", "123", "--name", "x", "--region", "990100"
    )
    assert code == 1 and "统一社会信用代码" in err

    code, out, err = run(
        capsys, "token", "create", "--agency", CENTER, "--role", "editor", "--holder", "张编辑"
    )
    assert code == 0 and out.startswith("gk_") and "only this once" in err
    code, _, err = run(
        capsys,
        "token",
        "create",
        "--agency",
        "11990100MB0000009X",
        "--role",
        "editor",
        "--holder",
        "某人",
    )
    assert code == 1 and "not registered" in err

    item_file = tmp_path / "item.json"
    item_file.write_text(json.dumps(bid_candidates(), ensure_ascii=False), encoding="utf-8")
    code, out, _ = run(capsys, "submit", str(item_file), "--as", "张编辑")
    assert code == 0
    item: dict[str, Any] = json.loads(out)
    # Received the evaluation report on Friday 20 November: 3 days, to Monday 23 November.
    assert (item["status"], item["deadline"]) == ("submitted", "2026-11-23")
    assert "13800000000" not in out

    code, _, err = run(capsys, "approve", str(item["id"]), "--as", "张编辑")
    assert code == 1 and "先审后发" in err
    code, out, _ = run(capsys, "approve", str(item["id"]), "--as", "李审核")
    approved = json.loads(out)
    assert code == 0 and approved["status"] == "approved"
    assert approved["index_no"].startswith(f"{CENTER}/")
    code, _, err = run(capsys, "approve", str(item["id"]), "--as", "李审核")
    assert code == 1 and "no version awaiting approval" in err
    assert run(capsys, "approve", "999", "--as", "李审核")[0] == 1

    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps(bid_candidates(secrecy="state_secret")), encoding="utf-8")
    code, _, err = run(capsys, "submit", str(bad_file))
    assert code == 1 and "secrecy" in err

    code, out, _ = run(capsys, "ledger", "verify")
    assert code == 0 and "ledger intact" in out
    with closing(sqlite3.connect(cli_env)) as conn, conn:
        conn.execute("UPDATE events SET actor = 'forger' WHERE seq = 3")
    code, _, err = run(capsys, "ledger", "verify")
    assert code == 1
    assert "BROKEN at event 3" in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("deadline", "2026-09-30", "--days", "7"), "2026-10-15"),
        (("deadline", "2026-09-30", "--days", "7", "--json"),
         '{"start": "2026-09-30", "days": 7, "deadline": "2026-10-15", "provisional": false}'),
        (("deadline", "2026-11-20"), "2026-12-18"),
    ],
)  # fmt: skip
def test_deadline(
    cli_env: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], expected: str
) -> None:
    code, out, _ = run(capsys, *args)
    assert code == 0
    assert out.strip() == expected


def test_deadline_past_known_data_is_provisional(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "deadline", "2026-12-20", "--json")
    assert code == 0 and json.loads(out)["provisional"] is True
    code, _, err = run(capsys, "deadline", "2026-13-01")
    assert code == 1 and err.startswith("error:")


def test_catalogue_command(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "catalogue")
    assert code == 0
    for name in ("住房保障", "国有土地使用权出让", "矿业权出让", "政府采购", "国有产权交易",
                 "工程建设项目招标投标", "黑名单", "中标候选人"):  # fmt: skip
        assert name in out
    code, out, _ = run(capsys, "catalogue", "--json")
    assert len(json.loads(out)["domains"]) == 6


def test_console_script_is_installed(cli_env: Path) -> None:
    script = Path(sys.executable).with_name("gongkai")
    result = subprocess.run(  # noqa: S603 - our own console script
        [str(script), "deadline", "2026-09-30", "--days", "7"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2026-10-15"


def test_tokens_are_listed_and_revoked_and_need_a_holder(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "migrate")
    run(capsys, "agency", "add", "--code", CENTER, "--name", "中心", "--region", "990100")
    with pytest.raises(SystemExit):  # argparse: --holder is required
        main(["token", "create", "--agency", CENTER, "--role", "editor"])
    assert "--holder" in capsys.readouterr().err
    code, token, _ = run(capsys, "token", "create", "--agency", CENTER, "--role", "editor",
                         "--holder", "张编辑")  # fmt: skip
    assert code == 0
    code, out, _ = run(capsys, "token", "list", "--json")
    [listed] = json.loads(out)
    assert (listed["holder"], listed["revoked_at"]) == ("张编辑", None)
    assert token.strip() not in out  # never the secret
    code, out, _ = run(capsys, "token", "revoke", str(listed["id"]))
    assert code == 0 and "revoked" in out
    code, out, _ = run(capsys, "token", "list")
    assert "revoked" in out
    code, _, err = run(capsys, "token", "revoke", str(listed["id"]))
    assert code == 1 and "already revoked" in err
