"""JSON responses and RFC 9457 problem details, the only two shapes the API answers in."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

PROBLEM_TYPE = "application/problem+json"


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(data, ensure_ascii=False),
        content_type="application/json",
        headers=headers,
    )


def problem(
    status: int,
    title: str,
    detail: str,
    errors: list[tuple[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A problem+json response; `errors` become one entry per field with a JSON pointer."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    if errors:
        body["errors"] = [
            {"field": path, "pointer": _pointer(path), "detail": message}
            for path, message in errors
        ]
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False),
        content_type=PROBLEM_TYPE,
        headers=headers,
    )


def _pointer(path: str) -> str:
    """`fields.candidates[0].name` -> `#/fields/candidates/0/name` (RFC 6901 in a fragment)."""
    parts = path.replace("[", ".").replace("]", "").split(".")
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts if p)
