"""The OpenAPI 3.1 document served at /api/v1/openapi.json.

Request schemas come from the pydantic models intake validates with, so the document cannot
drift from what the server accepts; paths and responses are described here.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic.json_schema import models_json_schema

from dispatcher import __version__
from dispatcher.rules.intake import ItemIn, RevisionIn, WithdrawIn
from dispatcher.rules.permissions import PERMISSIONS, ROLES
from dispatcher.rules.states import ITEM_STATES

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_ITEM_OK = {
    "description": "The item with its versions and deliveries",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ItemOut"}}},
}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}


def _body(schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"required": True, "content": {"application/json": {"schema": ref}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _PROBLEM for code in codes}


def _op(summary: str, action: str | None, ok: dict[str, Any], *codes: int, **more: Any) -> Any:
    """An operation; `action` names its permission (`rules.permissions`), None: no token."""
    op: dict[str, Any] = {"summary": summary, "responses": {**ok, **_errors(*codes)}, **more}
    if action is None:
        op["security"] = []
    else:
        roles = PERMISSIONS[action]
        role = "any" if set(roles) == set(ROLES) else " or ".join(roles)
        op["description"] = f"Role: {role}, of the item's own agency."
    return op


@functools.cache
def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(ItemIn, "validation"), (RevisionIn, "validation"), (WithdrawIn, "validation")],
        ref_template="#/components/schemas/{model}",
    )
    components: dict[str, Any] = dict(schemas.get("$defs", {}))
    components["ItemOut"] = {
        "type": "object",
        "description": "The item's latest content plus id, status, index_no, deadline, versions.",
        "required": ["id", "status", "deadline", "deadline_provisional", "versions"],
        "properties": {
            "id": {"type": "integer"},
            "status": {"enum": list(ITEM_STATES)},
            "index_no": {"type": ["string", "null"], "description": "索引号, set on approval"},
            "deadline": {"type": "string", "format": "date"},
            "deadline_provisional": {"type": "boolean"},
            "deadline_rule": {
                "type": ["object", "null"],
                "description": "the rule that set the deadline: kind (deadline or lead), count, "
                "unit (working_days or days), from (what starts the clock) or before (the "
                "event a notice precedes), basis (the legal citation), start, and the rules' "
                "version (1: before per-category rules)",
            },
            "first_published_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "when the website (第一平台) first published it; each version "
                "also has `published_at` and `on_time` (no later than its deadline)",
            },
            "versions": {"type": "array", "items": {"type": "object"}},
        },
    }
    components["Problem"] = {
        "type": "object",
        "description": "RFC 9457 problem details; `errors` lists one message per field.",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "field": {"type": "string"},
                        "pointer": {"type": "string"},
                        "detail": {"type": "string"},
                    },
                },
            },
        },
    }
    created = {"201": _ITEM_OK, "200": {"description": "Idempotent replay of an earlier submit"}}
    idem = {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}
    list_params = [
        {"name": n, "in": "query", "schema": {"type": t}}
        for n, t in (("status", "string"), ("domain", "string"), ("category", "string"),
                     ("agency", "string"), ("since", "string"), ("cursor", "integer"),
                     ("limit", "integer"))
    ]  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {"title": "Gongkai disclosure API", "version": __version__},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/catalogue": {
                "get": _op(
                    "The catalogue of domains and categories",
                    None,
                    {"200": {"description": "The catalogue"}},
                )
            },
            "/items": {
                "post": _op(
                    "Submit an item",
                    "submit",
                    created,
                    401,
                    403,
                    413,
                    415,
                    422,
                    requestBody=_body("ItemIn"),
                    parameters=[idem],
                ),
                "get": _op(
                    "List the agency's items, newest first (keyset pages)",
                    "read",
                    {"200": {"description": "items and next_cursor"}},
                    401,
                    403,
                    422,
                    parameters=list_params,
                ),
            },
            "/items/{id}": {
                "get": _op("One item", "read", {"200": _ITEM_OK}, 401, 403, 404, parameters=[_ID])
            },
            "/items/{id}/approve": {
                "post": _op(
                    "Approve the pending version",
                    "approve",
                    {"200": _ITEM_OK},
                    401,
                    403,
                    404,
                    409,
                    parameters=[_ID],
                )
            },
            "/items/{id}/revisions": {
                "post": _op(
                    "Submit a revision (needs approval)",
                    "revise",
                    {"201": _ITEM_OK},
                    401,
                    403,
                    404,
                    409,
                    422,
                    parameters=[_ID],
                    requestBody=_body("RevisionIn"),
                )
            },
            "/items/{id}/withdraw": {
                "post": _op(
                    "Withdraw the item everywhere",
                    "withdraw",
                    {"200": _ITEM_OK},
                    401,
                    403,
                    404,
                    409,
                    422,
                    parameters=[_ID],
                    requestBody=_body("WithdrawIn"),
                )
            },
        },
        "components": {
            "schemas": components,
            "responses": {
                "Problem": {
                    "description": "An error (RFC 9457)",
                    "content": {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    },
                }
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
