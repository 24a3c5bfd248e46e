"""Times in SQL, the same on both databases, so that the audit's reads can be done by the
database: `beijing_day(stamp)` is the day (Asia/Shanghai) a stored UTC time falls on, and
`utc_text(stamp)` the time as text, "YYYY-MM-DD HH:MM:SS.ffffff" in UTC (for values gathered
into one string; `utc_iso` turns it into ISO 8601).

China keeps one offset all year (UTC+8, no summer time since 1991), so on SQLite, where
`UTCDateTime` stores naive UTC text in exactly that form, the day is `date(stamp, '+8 hours')`
(of the time cut to the second) and the text is the stored value; PostgreSQL converts its
`timestamptz` explicitly.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

ZONE = "Asia/Shanghai"
SQLITE_OFFSET = "+8 hours"


class beijing_day(FunctionElement[Any]):  # an SQL function, named like one
    """The Beijing calendar day of a UTC timestamp column (NULL stays NULL)."""

    type = sa.Date()
    inherit_cache = True
    name = "beijing_day"


class utc_text(FunctionElement[Any]):  # an SQL function, named like one
    """A UTC timestamp column as text with microseconds (NULL stays NULL)."""

    type = sa.String()
    inherit_cache = True
    name = "utc_text"


def _arg(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(beijing_day, "sqlite")
def _sqlite_day(element: beijing_day, compiler: SQLCompiler, **kw: Any) -> str:
    # To the second first: SQLite's date functions round to the millisecond, which would put
    # 23:59:59.9995 on the next day.
    return f"date(substr({_arg(element, compiler, **kw)}, 1, 19), '{SQLITE_OFFSET}')"


@compiles(beijing_day, "postgresql")
def _postgresql_day(element: beijing_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(({_arg(element, compiler, **kw)}) AT TIME ZONE '{ZONE}' AS DATE)"


@compiles(utc_text, "sqlite")
def _sqlite_text(element: utc_text, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({_arg(element, compiler, **kw)} AS TEXT)"


@compiles(utc_text, "postgresql")
def _postgresql_text(element: utc_text, compiler: SQLCompiler, **kw: Any) -> str:
    return (f"to_char(({_arg(element, compiler, **kw)}) AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD HH24:MI:SS.US')")  # fmt: skip


_BEIJING = timedelta(hours=8)


def beijing_text(text: str) -> str:
    """A `utc_text` value as "YYYY-MM-DD HH:MM:SS" in Beijing time (UTC+8 all year)."""
    return (datetime.fromisoformat(text[:19]) + _BEIJING).isoformat(" ")


def utc_iso(text: str) -> str:
    """A `utc_text` value as `datetime.isoformat` writes that UTC time ("+00:00", and no
    fraction when it is zero), without making the datetime."""
    day, clock, fraction = text[:10], text[11:19], text[19:]
    if not fraction.strip(".0"):
        fraction = ""
    return f"{day}T{clock}{fraction}+00:00"


class json_string(FunctionElement[Any]):  # an SQL function, named like one
    """`json_string(text_column, key)`: the string under a top-level `key` of JSON text as this
    project writes it (`ledger.canonical`: compact, keys sorted); NULL when there is none, or
    the text is not JSON (on SQLite) or not in that form (on PostgreSQL) — never an error."""

    type = sa.String()
    inherit_cache = True
    name = "json_string"


def _column_and_key(element: json_string, compiler: SQLCompiler, **kw: Any) -> tuple[str, str]:
    column, key = list(element.clauses)
    name = key.value if isinstance(key, sa.BindParameter) else None
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError("json_string takes a literal key made of letters, digits and _")
    return compiler.process(column, **kw), name


@compiles(json_string, "sqlite")
def _sqlite_json_string(element: json_string, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = _column_and_key(element, compiler, **kw)
    value = f"json_extract({column}, '$.{key}')"
    return (
        f"CASE WHEN json_valid({column}) AND json_type({column}, '$.{key}') = 'text' "
        f"THEN {value} END"
    )


@compiles(json_string, "postgresql")
def _postgresql_json_string(element: json_string, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = _column_and_key(element, compiler, **kw)
    return f'substring({column} from \'"{key}":"([^"\\\\]*)"\')'
