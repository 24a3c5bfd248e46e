"""The OpenAPI document's part for the timeliness audit (`api_audit.py`): its three operations
and their schemas. `openapi.py` hands in its operation helpers and merges this in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dispatcher.rules.verdicts import FILTERABLE, VERDICTS

_DATE = {"type": "string", "format": "date"}
_NULL_DATE = {"type": ["string", "null"], "format": "date"}
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}
_NULL_INT = {"type": ["integer", "null"]}
_NULL_STR = {"type": ["string", "null"]}
_SCOPE = ("Role: auditor or admin (every agency, or the one `agency` names); editor or approver "
          "(their own agency only: naming another is 403).")  # fmt: skip
_CSV = {"text/csv": {"schema": {"type": "string"}}}
_LEDGER_HEADERS = {
    "X-Ledger-Verified": {"schema": {"enum": ["true", "false"]}},
    "X-Ledger-Through-Event": {"schema": {"type": "string", "pattern": "^[0-9]+$"}},
}

SCHEMAS: dict[str, Any] = {
    "Ledger": {
        "type": "object",
        "description": "Whether the ledger's hash chain verifies, through which event, and when "
        "this process last checked it in full",
        "required": ["verified", "through_event", "full_check_at"],
        "properties": {
            "verified": {"type": "boolean"},
            "through_event": {"type": "integer"},
            "full_check_at": {"type": "string", "format": "date-time"},
            "first_bad_event": _NULL_INT,
            "problem": {"type": "string"},
        },
    },
    "AuditRow": {
        "type": "object",
        "required": ["item_id", "version", "verdict", "deadline", "published_at", "ledger"],
        "properties": {
            "item_id": {"type": "integer"},
            "version": {"type": "integer"},
            "kind": {"enum": ["original", "revision", "withdrawal"]},
            "status": {"type": "string"},
            "agency": {"type": "string"},
            "agency_name": {"type": "string"},
            "domain": {"type": "string"},
            "category": {"type": "string"},
            "index_no": _NULL_STR,
            "title": {"type": "string"},
            "decision": _NULL_STR,
            "start": _NULL_DATE,
            "deadline": _DATE,
            "deadline_provisional": {"type": "boolean"},
            "rule": {"type": ["object", "null"], "description": "the rule and its legal basis"},
            "published_at": {**_NULL_TIME, "description": "the website's confirmed time"},
            "published_version": _NULL_INT,
            "channels": {"type": "object", "additionalProperties": _NULL_TIME},
            "working_days_taken": _NULL_INT,
            "verdict": {"enum": list(VERDICTS)},
            "late_by": _NULL_INT,
            "due_in": _NULL_INT,
            "late_reason": _NULL_STR,
            "ledger": {"enum": ["ok", "mismatch", "missing", None]},
            "publicity": {
                "type": ["object", "null"],
                "description": "公示期 against the category's minimum, where it has one",
            },
        },
    },
    "AuditPage": {
        "type": "object",
        "required": ["as_of", "rows", "next", "ledger"],
        "properties": {
            "as_of": _DATE,
            "rows": {"type": "array", "items": {"$ref": "#/components/schemas/AuditRow"}},
            "next": {**_NULL_STR, "description": "the cursor of the next page"},
            "ledger": {"$ref": "#/components/schemas/Ledger"},
        },
    },
    "AuditSummary": {
        "type": "object",
        "required": [
            "totals",
            "by_agency",
            "by_domain",
            "by_category",
            "by_channel",
            "working_days_taken",
            "as_of",
            "ledger",
        ],
        "properties": {
            "totals": {"type": "object"},
            **{
                f"by_{key}": {"type": "array", "items": {"type": "object"}}
                for key in ("agency", "domain", "category", "channel")
            },
            "working_days_taken": {"type": "array", "items": {"type": "object"}},
            "as_of": _DATE,
            "ledger": {"$ref": "#/components/schemas/Ledger"},
        },
    },
    "AuditAnnual": {
        "type": "object",
        "required": [
            "year",
            "published_total",
            "by_category",
            "decisions",
            "timeliness",
            "ledger",
        ],
        "properties": {
            "year": {"type": "integer"},
            "agency": _NULL_STR,
            "published_total": {"type": "integer"},
            "by_category": {"type": "array", "items": {"type": "object"}},
            "decisions": {"type": "array", "items": {"type": "object"}},
            "timeliness": {"type": "object"},
            "as_of": _DATE,
            "ledger": {"$ref": "#/components/schemas/Ledger"},
        },
    },
}


def paths(
    op: Callable[..., dict[str, Any]],
    json_: Callable[..., dict[str, Any]],
    query: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    """The audit's operations, built with `openapi.py`'s helpers."""
    filters = [
        query("from", _DATE, "deadlines on or after this day"),
        query("to", _DATE, "deadlines on or before this day"),
        query("agency", {"type": "string"}, "one agency's code"),
        query("domain", {"type": "string"}, "a domain key"),
        query("category", {"type": "string"}, "a category key"),
    ]
    fmt = query("format", {"enum": ["json", "csv"], "default": "json"},
                "csv: every row of the query as one download (UTF-8 with BOM)")  # fmt: skip
    rows_ok = json_("AuditPage", "A page of verdicts (JSON), or every row (CSV)")
    rows_ok["content"].update(_CSV)
    rows_ok["headers"] = _LEDGER_HEADERS
    annual_ok = json_("AuditAnnual", "The year's figures")
    annual_ok["content"].update(_CSV)
    return {
        "/audit/timeliness": {
            "get": op(
                "Each item version's deadline, publication and verdict",
                "read",
                {"200": rows_ok},
                403,
                description=_SCOPE,
                operationId="auditTimeliness",
                parameters=[
                    *filters,
                    query("status", {"enum": list(FILTERABLE)}, "rows with this verdict"),
                    query(
                        "within",
                        {"type": "integer", "minimum": 0, "maximum": 366},
                        "with status=due: due in at most this many working days",
                    ),
                    query(
                        "cursor",
                        {"type": "string", "pattern": "^[0-9]{1,15}\\.[0-9]{1,9}$"},
                        "the `next` of the page before",
                    ),
                    query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 200},
                        "at most this many rows",
                    ),
                    fmt,
                ],
            )
        },
        "/audit/summary": {
            "get": op(
                "Totals and on-time rates by agency, domain, category and channel",
                "read",
                {"200": json_("AuditSummary", "The summary")},
                403,
                description=_SCOPE,
                operationId="auditSummary",
                parameters=filters,
            )
        },
        "/audit/annual": {
            "get": op(
                "The annual report's active-disclosure figures (政府信息公开工作年度报告)",
                "read",
                {"200": annual_ok},
                403,
                description=_SCOPE,
                operationId="auditAnnual",
                parameters=[
                    {
                        **query(
                            "year",
                            {"type": "integer", "minimum": 2000, "maximum": 2100},
                            "the year",
                        ),
                        "required": True,
                    },
                    query("agency", {"type": "string"}, "one agency's code"),
                    fmt,
                ],
            )
        },
    }
