"""The audit's rows as people read them: CSV for spreadsheet programs (UTF-8 with a byte-order
mark, Chinese headers, CRLF, every text that a spreadsheet would take for a formula defused with
a leading apostrophe) and a plain-text table for a terminal. Times are shown in Beijing time."""

from __future__ import annotations

import contextlib
import csv
import gc
import io
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from channels import standins
from dispatcher.items.audit_query import channel_beijing
from dispatcher.items.timeliness import Judged

BOM = "\ufeff"
VERDICT_NAMES = {"on_time": "按时", "late": "逾期发布", "due": "待发布", "overdue": "逾期未发布",
                 "withdrawn": "发布前已撤回"}  # fmt: skip
KIND_NAMES = {"original": "首次", "revision": "变更", "withdrawal": "撤回"}
LEDGER_NAMES = {"ok": "一致", "mismatch": "不一致", "missing": "缺少记录", None: ""}
COLUMNS: tuple[tuple[str, str], ...] = (
    ("item_id", "事项编号"), ("version", "版本"), ("kind", "版本类型"), ("agency", "发布机构代码"),
    ("agency_name", "发布机构"), ("domain", "领域"), ("category", "类别"), ("index_no", "索引号"),
    ("title", "标题"), ("start", "起算日"), ("deadline", "公开期限"),
    ("deadline_provisional", "期限待定"), ("basis", "依据"), ("published_at", "网站发布时间"),
    ("working_days_taken", "用时（工作日）"), ("verdict", "结论"), ("late_by", "逾期（工作日）"),
    ("due_in", "剩余（工作日）"), ("late_reason", "逾期说明"), ("channels", "其他渠道确认时间"),
    ("publicity", "公示期"), ("ledger", "账本核对"),
)  # fmt: skip
TABLE_COLUMNS = ("item_id", "version", "agency_name", "category", "deadline", "published_at",
                 "working_days_taken", "verdict", "late_by", "due_in", "ledger")  # fmt: skip
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


# Cells whose text comes from people (titles, names, reasons, legal bases): what a spreadsheet
# would take for a formula is defused there; the others are codes, numbers and dates.
FREE_TEXT = ("agency_name", "index_no", "title", "basis", "late_reason")
KEYS = tuple(key for key, _ in COLUMNS)
_FREE = tuple(KEYS.index(key) for key in FREE_TEXT)


def cells(j: Judged) -> list[str]:
    """A judged version's cells as text, in `COLUMNS` order, times in Beijing time (a year's
    export makes 100,000 of these)."""
    r, verdict, delivery = j.row, j.verdict, j.delivery
    rule = j.rule if isinstance(j.rule, dict) else {}
    taken, late_by, due_in = verdict.taken, verdict.late_by, verdict.due_in
    return [
        str(r.item_id), str(r.version), KIND_NAMES.get(r.kind, r.kind), r.agency_code,
        r.agency_name or "", r.domain, r.category, r.index_no or "", r.title or "",
        j.start.isoformat() if j.start is not None else "", j.deadline.isoformat(),
        "是" if j.provisional else "", str(rule.get("basis") or ""),
        standins.beijing(delivery.confirmed_at) if delivery is not None else "",
        "" if taken is None else str(taken),
        VERDICT_NAMES.get(verdict.verdict, verdict.verdict),
        "" if late_by is None else str(late_by), "" if due_in is None else str(due_in),
        r.late_reason or "",
        channel_beijing(r.channels),
        _publicity(j.publicity), LEDGER_NAMES.get(j.ledger, str(j.ledger)),
    ]  # fmt: skip


def shown(j: Judged) -> dict[str, str]:
    """A judged version's cells as text, by column key."""
    return dict(zip(KEYS, cells(j), strict=True))


def _publicity(found: Mapping[str, Any] | None) -> str:
    if not found:
        return ""
    verdict = "满足" if found["ok"] else f"不足（最早应至 {found['shortest_end']}）"
    return f"{found['start']} 至 {found['end']}，{verdict}"


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """For writing a whole export: the objects that exist when it starts (modules, caches, the
    catalogue …) are left out of the garbage collector's full passes, which pages of rows
    would otherwise set off several times over (about a tenth of a year's export, measured);
    they are handed back to it afterwards (`gc.freeze`, `gc.unfreeze`)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def csv_header() -> str:
    out = io.StringIO()
    csv.writer(out).writerow(header for _, header in COLUMNS)
    return BOM + out.getvalue()


def csv_rows(rows: Iterable[Judged]) -> str:
    out = io.StringIO()
    lines = []
    for row in rows:
        line = cells(row)
        for i in _FREE:
            if line[i].startswith(_FORMULA):
                line[i] = "'" + line[i]
        lines.append(line)
    csv.writer(out).writerows(lines)
    return out.getvalue()


def table(rows: Iterable[Judged]) -> str:
    """A plain-text table of the main columns, one line per row."""
    headers = dict(COLUMNS)
    lines = [[headers[key] for key in TABLE_COLUMNS]]
    lines += [[shown(row).get(key, "") for key in TABLE_COLUMNS] for row in rows]
    widths = [max(_width(line[i]) for line in lines) for i in range(len(TABLE_COLUMNS))]
    return "\n".join(
        "  ".join(cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(line)).rstrip()
        for line in lines
    )


def _width(text: str) -> int:
    """Columns a text takes on a terminal: CJK characters take two."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def annual_rows(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """The annual figures as (section, item, value) lines, in Chinese."""
    lines = [("主动公开", "网站首次公开事项合计", str(report["published_total"]))]
    lines += [("主动公开（按领域、类别）", f"{r['domain_name']} / {r['category_name']}",
               str(r["published"])) for r in report["by_category"]]  # fmt: skip
    lines += [
        ("行政决定公开", f"{d['name']}决定", str(d["disclosed"])) for d in report["decisions"]
    ]
    totals = report["timeliness"]
    for key, name in (("total", "应公开版本"), *VERDICT_NAMES.items()):
        lines.append(("公开时效", name, str(totals[key])))
    rate = totals["on_time_rate"]
    lines.append(("公开时效", "按时公开率", "" if rate is None else f"{rate:.2%}"))
    return lines


def annual_csv(report: Mapping[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("部分", "项目", f"{report['year']}年"))
    writer.writerows(annual_rows(report))
    return BOM + out.getvalue()
