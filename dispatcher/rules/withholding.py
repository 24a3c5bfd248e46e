"""Paths into an item (`fields.candidates[0].project_lead_phone`) and removing what they name.

Withholding (部分公开) removes a part of an item from every public representation; the item keeps
the path and the legal basis, so the public pages can say what was withheld and why.
"""

from __future__ import annotations

import re
from typing import Any

from dispatcher.errors import PathError

WITHHOLDABLE_ROOTS = ("fields", "summary", "body_html", "document_number", "keywords")
_STEP = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d{1,4})\]")

Path = tuple[str | int, ...]


def parse_path(text: str) -> Path:
    """`fields.a[0].b` -> ("fields", "a", 0, "b"); the first step must be a key."""
    steps: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _STEP.match(text, pos)
        if match is None or (pos == 0 and text.startswith(".")):
            raise PathError(f"malformed path {text!r} (expected e.g. fields.candidates[0].name)")
        steps.append(match[1] if match[1] is not None else int(match[2]))
        pos = match.end()
    if not steps or not isinstance(steps[0], str):
        raise PathError(f"malformed path {text!r}")
    if isinstance(steps[-1], int):
        raise PathError(f"path {text!r} must end in a field name, not a list position")
    return tuple(steps)


def remove_path(document: dict[str, Any], path: Path) -> None:
    """Delete what `path` names from `document` (in place); PathError if it is not there."""
    node: Any = document
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            raise PathError(f"{_show(path)} names nothing in this item") from None
    last = path[-1]
    if not isinstance(node, dict) or last not in node:
        raise PathError(f"{_show(path)} names nothing in this item")
    del node[last]


def _show(path: Path) -> str:
    return "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in path).lstrip(".")
