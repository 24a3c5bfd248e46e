"""`gongkai audit` in-process on a fresh SQLite file: the rows as CSV, JSON and a table, the
summary and the annual figures, each with the ledger's state."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from dispatcher.rules.deadlines import today
from tests.helpers import CENTER, bid_candidates
from tests.test_cli import cli_env, run  # noqa: F401 - the fixture

TODAY = today()


@pytest.fixture
def two_items(cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[int]:  # noqa: F811
    """Two submitted items, not yet published: one due, one overdue (formed 40 days ago)."""
    assert run(capsys, "migrate")[0] == 0
    assert run(capsys, "agency", "add", "--code", CENTER, "--name", "示范市公共资源交易中心",
               "--region", "990100")[0] == 0  # fmt: skip
    ids = []
    for n, (formed, extra) in enumerate(
        ((TODAY, {}), (TODAY - timedelta(days=40), {"late_reason": "评标报告延迟送达"}))
    ):
        item = bid_candidates(formed_on=formed.isoformat(), project_code=f"E99010000012{n:05d}",
                              title=f"=公示{n}", **extra)  # fmt: skip
        path = tmp_path / f"item{n}.json"
        path.write_text(json.dumps(item, ensure_ascii=False), encoding="utf-8")
        code, out, err = run(capsys, "submit", str(path), "--as", "张编辑")
        assert code == 0, err
        ids.append(json.loads(out)["id"])
    return ids


def test_rows_as_csv_json_and_a_table(
    two_items: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    due, overdue = two_items
    code, out, err = run(capsys, "audit", "--format", "csv")
    assert code == 0 and out.startswith("\ufeff")
    table = list(csv.DictReader(io.StringIO(out.removeprefix("\ufeff"))))
    verdicts = {int(r["事项编号"]): r["结论"] for r in table}
    assert verdicts == {due: "待发布", overdue: "逾期未发布"}
    assert all(r["标题"].startswith("'=") for r in table)  # not a formula
    assert "账本核对：哈希链完整" in err

    code, out, _ = run(capsys, "audit", "--format", "json", "--status", "overdue")
    body = json.loads(out)
    assert code == 0 and [r["item_id"] for r in body["rows"]] == [overdue]
    assert body["rows"][0]["late_by"] >= 1 and body["ledger"]["verified"] is True

    code, out, _ = run(capsys, "audit")
    assert code == 0 and "逾期未发布" in out and "待发布" in out and "账本核对" in out


def test_summary_and_annual(two_items: list[int], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "audit", "summary")
    body = json.loads(out)
    assert code == 0
    assert (body["totals"]["due"], body["totals"]["overdue"], body["totals"]["total"]) == (1, 1, 2)
    assert body["totals"]["on_time_rate"] == 0.0 and body["ledger"]["verified"] is True
    code, _, err = run(capsys, "audit", "summary", "--status", "late")
    assert code == 1 and "no status" in err

    code, out, _ = run(capsys, "audit", "annual", "--year", str(TODAY.year), "--format", "csv")
    assert code == 0 and out.startswith("\ufeff") and "网站首次公开事项合计,0" in out
