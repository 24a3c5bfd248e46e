"""An item's structured fields as tables, with each withheld part marked where it was removed.

Withheld paths look like `fields.candidates[0].project_lead_phone` (a cell of a table) or
`fields.duration_days` (a scalar row); other roots (`summary`, `body_html`, …) are listed below the
item. Labels come from the catalogue (`Publication.field_labels`), falling back to the keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_CELL = re.compile(r"^fields\.([A-Za-z_]\w*)\[(\d{1,4})\]\.([A-Za-z_]\w*)$")
_SCALAR = re.compile(r"^fields\.([A-Za-z_]\w*)$")
ROOT_LABELS = {
    "summary": "内容概述",
    "body_html": "正文",
    "document_number": "文号",
    "keywords": "主题词",
}


@dataclass(frozen=True)
class Cell:
    text: str
    withheld: bool = False


@dataclass(frozen=True)
class FieldTable:
    """A rendered part of `fields`: scalars as key/value rows, or one list of rows as columns."""

    caption: str | None
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class Withheld:
    """One withheld part: where (in Chinese), and its legal basis (e.g. 个人隐私)."""

    where: str
    basis: str


def withheld_notice(basis: str) -> str:
    return f"依法不予公开（{basis}）"


def field_tables(
    fields: Mapping[str, Any],
    labels: Mapping[str, str],
    withheld: tuple[Mapping[str, str], ...] = (),
) -> list[FieldTable]:
    """Tables for the structured fields: one key/value table, then one per list of row dicts."""
    cells: dict[tuple[str, int, str], str] = {}
    scalars_withheld: dict[str, str] = {}
    for w in withheld:
        basis = _basis(w)
        if m := _CELL.match(w.get("field", "")):
            cells[(m[1], int(m[2]), m[3])] = basis
        elif m := _SCALAR.match(w.get("field", "")):
            scalars_withheld[m[1]] = basis
    scalars: list[tuple[Cell, ...]] = []
    tables: list[FieldTable] = []
    for key, value in fields.items():
        label = labels.get(key, key)
        if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
            keys = [k for k, _ in labels.items() if k.startswith(f"{key}.")]
            present = dict.fromkeys(k for row in value for k in row)
            hidden = dict.fromkeys(c for (t, _, c) in cells if t == key)
            order = [k.split(".", 1)[1] for k in keys]
            columns = [c for c in order if c in present or c in hidden]
            columns += [c for c in {**present, **hidden} if c not in columns]
            rows = tuple(
                tuple(_cell(row, c, cells.get((key, i, c))) for c in columns)
                for i, row in enumerate(value)
            )
            heads = tuple(labels.get(f"{key}.{c}", c) for c in columns)
            tables.append(FieldTable(label, heads, rows))
        else:
            scalars.append((Cell(label), Cell(cell_text(value))))
    for key, basis in scalars_withheld.items():
        if key not in fields:
            scalars.append((Cell(labels.get(key, key)), Cell(withheld_notice(basis), True)))
    if scalars:
        tables.insert(0, FieldTable(None, ("项目", "内容"), tuple(scalars)))
    return tables


def _cell(row: Mapping[str, Any], column: str, basis: str | None) -> Cell:
    if basis is not None and column not in row:
        return Cell(withheld_notice(basis), True)
    return Cell(cell_text(row.get(column)))


def withheld_list(
    withheld: tuple[Mapping[str, str], ...], labels: Mapping[str, str]
) -> list[Withheld]:
    """Every withheld part in words: "中标候选人 第1行 项目负责人联系电话"."""
    found = []
    for w in withheld:
        path = w.get("field", "")
        if m := _CELL.match(path):
            column = labels.get(f"{m[1]}.{m[3]}", m[3])
            where = f"{labels.get(m[1], m[1])} 第{int(m[2]) + 1}行 {column}"
        elif m := _SCALAR.match(path):
            where = labels.get(m[1], m[1])
        else:
            root = path.split(".", 1)[0].split("[", 1)[0]
            where = ROOT_LABELS.get(root, path)
        found.append(Withheld(where, _basis(w)))
    return found


def _basis(w: Mapping[str, str]) -> str:
    return w.get("basis_name") or w.get("basis") or "依法"


def cell_text(value: Any) -> str:
    """A field value as display text; nested structures fall back to compact JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and not any(isinstance(v, dict | list) for v in value):
        return "；".join(cell_text(v) for v in value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
