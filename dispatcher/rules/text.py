"""What text may hold, the same on SQLite and PostgreSQL.

Nowhere: the NUL character (PostgreSQL cannot store it; SQLite would write it into a page) or an
unpaired surrogate (not Unicode: it cannot be encoded, so it would fail wherever it is written).
In a single line (a title, a name, a keyword): no control characters and no invisible
formatting characters — direction overrides (U+202A–U+202E, U+2066–U+2069) and zero-width
characters (U+200B–U+200F, U+2060–U+2064, U+FEFF) — which make a title read differently from what
it holds. All text is stored in Unicode normal form C (NFC), so equal text is equal bytes.
"""

from __future__ import annotations

import unicodedata
from typing import Any

MAX_DEPTH = 16  # levels of JSON nesting an item may have (it has at most five)
INVISIBLE = frozenset(
    [chr(c) for c in range(0x200B, 0x2010)]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2060, 0x2065)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\ufeff"]
)


def anywhere_problem(text: str) -> str | None:
    """Why `text` cannot be stored anywhere, or None."""
    if "\x00" in text:
        return "must not contain the NUL character (U+0000)"
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        return "holds an unpaired surrogate (e.g. \\ud800): not valid Unicode"
    return None


def line_problem(text: str) -> str | None:
    """Why `text` cannot be a single line shown to people (a title, a name), or None."""
    found = anywhere_problem(text)
    if found:
        return found
    for ch in text:
        if unicodedata.category(ch) == "Cc":
            return f"must be one line without control characters (U+{ord(ch):04X})"
        if ch in INVISIBLE:
            return f"must not contain invisible formatting characters (U+{ord(ch):04X})"
    return None


def json_problems(value: Any, limit: int = 20) -> list[tuple[str, str]]:
    """(path, message) for every string or key in decoded JSON that cannot be stored, and for
    nesting deeper than `MAX_DEPTH`; at most `limit` of them."""
    problems: list[tuple[str, str]] = []
    stack: list[tuple[str, Any, int]] = [("", value, 0)]
    while stack and len(problems) < limit:
        path, node, depth = stack.pop()
        if depth > MAX_DEPTH:
            problems.append((path or "(body)", f"nested more than {MAX_DEPTH} levels deep"))
            continue
        if isinstance(node, str):
            found = anywhere_problem(node)
            if found:
                problems.append((path or "(body)", found))
        elif isinstance(node, dict):
            for key, item in node.items():
                found = anywhere_problem(key)
                if found:
                    problems.append((f"{path}.(key)".lstrip("."), found))
                stack.append((f"{path}.{key}".lstrip(".") if not found else path, item, depth + 1))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", item, depth + 1) for i, item in enumerate(node))
    return sorted(problems)


def nfc(value: Any) -> Any:
    """`value` with every string in normal form C and CRLF/CR line breaks as LF."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n"))
    if isinstance(value, list):
        return [nfc(v) for v in value]
    if isinstance(value, dict):
        return {k: nfc(v) for k, v in value.items()}
    return value
