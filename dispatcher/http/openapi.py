"""The OpenAPI 3.1 document served at /api/v1/openapi.json: every route under /api/v1.

Request schemas come from the pydantic models intake validates with, so the document cannot
drift from what the server accepts; paths, parameters and responses are described here.
Outside /api/v1 (`/healthz`, `/readyz`, `/metrics`, `/hooks/…`, `/search` and the public site)
is not the API and is not in it (README: "HTTP API").

To add an operation, add its path to `_paths()` with `_op(...)`: a summary, the permission it
needs (`rules.permissions.PERMISSIONS`; None: no token), its success responses, and the other
statuses its handler answers. `_op` adds those every operation shares (`_op`'s docstring);
tests/test_openapi.py fails while a route under /api/v1 is missing here, and its schemathesis
run fails on a status the document does not list.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic.json_schema import models_json_schema

from dispatcher import __version__
from dispatcher.http import openapi_audit
from dispatcher.items.queries import MAX_PAGE
from dispatcher.rules.intake import ItemIn, RevisionIn, WithdrawIn
from dispatcher.rules.permissions import PERMISSIONS, ROLES
from dispatcher.rules.states import ITEM_STATES, Action, DeliveryStatus, ItemStatus, VersionKind

MAX_ID = 10**15 - 1  # the routes take an id of at most 15 digits
MAX_CURSOR = 2**63 - 1  # ids are 64-bit (`api_items.MAX_ID`)

# Each error status: its response's name in components, and what it means here. All share one
# body, `Problem` (RFC 9457).
ERRORS: dict[int, tuple[str, str]] = {
    401: ("Unauthorized", "No valid bearer token: missing, unknown or revoked"),
    403: ("Forbidden", "The token's role may not do this, or a rule forbids it (先审后发: no "
          "self-approval; 谁公开: only the publishing agency submits; a token lists only its "
          "own agency's items)"),
    404: ("NotFound", "No such item or delivery; another agency's answers the same (whether "
          "it exists is not revealed)"),
    409: ("Conflict", "The state does not allow it: approving twice, revising or withdrawing "
          "a withdrawn item, retrying a delivery that has not failed"),
    413: ("TooLarge", "The body is larger than server.max_body_bytes (1 MiB by default)"),
    415: ("NotJson", "The body is not JSON: send Content-Type application/json"),
    422: ("Invalid", "Invalid input, one entry per field in `errors` (on any operation, also a "
          "query string holding a NUL or an unpaired surrogate)"),
    503: ("Unavailable", "The database is busy: another process held SQLite's write lock too "
          "long; nothing was written, try again"),
}  # fmt: skip
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    503: {
        "Retry-After": {
            "description": "seconds worth waiting, when known",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: str | dict[str, Any], description: str, **more: Any) -> dict[str, Any]:
    """A success response with a JSON body (`schema`: a component's name, or a schema)."""
    body = _ref("schemas", schema) if isinstance(schema, str) else schema
    return {"description": description, "content": {"application/json": {"schema": body}}, **more}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref("schemas", schema)}}}


def _op(
    summary: str,
    action: str | None,
    ok: dict[str, Any],
    *codes: int,
    writes: bool = False,
    **more: Any,
) -> dict[str, Any]:
    """An operation; `action` names its permission (`rules.permissions`), None: no token; the
    roles it allows are also listed in `x-roles`.

    `ok` maps success statuses to responses; `codes` are the errors its handler raises. Added
    here, as every operation of the kind answers them: 422 (the middleware refuses a bad query
    string anywhere), 401 with an `action`, 403 when the action is not every role's, and 503
    when it `writes` (SQLite's write lock).
    """
    shared = {422}
    if action is not None:
        shared.add(401)
        if set(PERMISSIONS[action]) != set(ROLES):
            shared.add(403)
    if writes:
        shared.add(503)
    errors = {str(c): _ref("responses", ERRORS[c][0]) for c in sorted(shared.union(codes))}
    op: dict[str, Any] = {"summary": summary, "responses": {**ok, **errors}, **more}
    if action is None:
        op["security"] = []
    else:
        roles = PERMISSIONS[action]
        role = "any" if set(roles) == set(ROLES) else " or ".join(roles)
        op.setdefault("description", f"Role: {role}, of the item's own agency.")
        op["x-roles"] = list(roles)
    return op


def _id(what: str) -> dict[str, Any]:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": f"the {what}'s id",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema}


_PAGE = [
    _query(
        "cursor",
        {"type": "integer", "minimum": 1, "maximum": MAX_CURSOR},
        "the `next_cursor` of the page before (none: the first page)",
    ),
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50},
        "at most this many",
    ),
]
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "description": "the same key and body answer the first request's item (200); the same key "
    "with another body is 422",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}
ITEM = "ItemOut"
_ITEM = "The item with its versions and deliveries"


def _paths() -> dict[str, Any]:
    """Every operation under /api/v1, by path (relative to the server URL) and method."""
    created = {"Location": {"required": True, "schema": {"type": "string"}}}
    replayed = {"Idempotent-Replayed": {"required": True, "schema": {"const": "true"}}}
    submitted = {
        "201": _json(ITEM, "Submitted", headers=created),
        "200": _json(ITEM, "An idempotent replay: the item submitted before with this key",
                     headers=replayed),
    }  # fmt: skip
    return {
        "/catalogue": {
            "get": _op(
                "The catalogue of domains and categories",
                None,
                {"200": _json("Catalogue", "The catalogue")},
                operationId="getCatalogue",
            )
        },
        "/openapi.json": {
            "get": _op(
                "This document",
                None,
                {"200": _json({"type": "object"}, "The OpenAPI 3.1 document")},
                operationId="getOpenapi",
            )
        },
        "/items": {
            "post": _op(
                "Submit an item",
                "submit",
                submitted,
                413,
                415,
                writes=True,
                operationId="submitItem",
                requestBody=_body("ItemIn"),
                parameters=[_IDEMPOTENCY_KEY],
            ),
            "get": _op(
                "List the agency's items, newest first (keyset pages)",
                "read",
                {"200": _json("ItemPage", "A page of items")},
                403,
                operationId="listItems",
                parameters=[
                    _query("status", {"enum": list(ITEM_STATES)}, "items in this state"),
                    _query("domain", {"type": "string"}, "a catalogue domain's key"),
                    _query("category", {"type": "string"}, "a catalogue category's key"),
                    _query("agency", {"type": "string"}, "your own agency's code (403 otherwise)"),
                    _query(
                        "since",
                        {"type": "string", "format": "date-time"},
                        "updated at or after this time, with its zone (from 2000 on)",
                    ),
                    *_PAGE,
                ],
            ),
        },
        "/items/{id}": {
            "get": _op(
                "One item",
                "read",
                {"200": _json(ITEM, _ITEM)},
                404,
                operationId="getItem",
                parameters=[_id("item")],
            )
        },
        "/items/{id}/approve": {
            "post": _op(
                "Approve the pending version (not one's own)",
                "approve",
                {"200": _json(ITEM, _ITEM)},
                404,
                409,
                writes=True,
                operationId="approveItem",
                parameters=[_id("item")],
            )
        },
        "/items/{id}/revisions": {
            "post": _op(
                "Submit a revision (needs approval)",
                "revise",
                {"201": _json(ITEM, _ITEM)},
                404,
                409,
                413,
                415,
                writes=True,
                operationId="reviseItem",
                parameters=[_id("item")],
                requestBody=_body("RevisionIn"),
            )
        },
        "/items/{id}/withdraw": {
            "post": _op(
                "Withdraw the item everywhere",
                "withdraw",
                {"200": _json(ITEM, _ITEM)},
                404,
                409,
                413,
                415,
                writes=True,
                operationId="withdrawItem",
                parameters=[_id("item")],
                requestBody=_body("WithdrawIn"),
            )
        },
        "/deliveries": {
            "get": _op(
                "List the agency's deliveries, newest first (keyset pages)",
                "read",
                {"200": _json("DeliveryPage", "A page of deliveries")},
                operationId="listDeliveries",
                parameters=[
                    _query("status", {"enum": list(DeliveryStatus)}, "deliveries in this state"),
                    _query("channel", {"type": "string"}, "a channel's name, e.g. website"),
                    *_PAGE,
                ],
            )
        },
        "/deliveries/{id}/retry": {
            "post": _op(
                "Put a failed delivery back in the queue",
                "retry",
                {"200": _json("Delivery", "The delivery, pending again")},
                404,
                409,
                writes=True,
                operationId="retryDelivery",
                parameters=[_id("delivery")],
            )
        },
        **openapi_audit.paths(_op, _json, _query),
    }


_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_TIME = {"type": "string", "format": "date-time"}


def _response_schemas() -> dict[str, Any]:
    """What the API answers with (the request schemas come from pydantic)."""
    head = {
        "id": {"type": "integer"},
        "agency": {"type": "string", "description": "the agency's code"},
        "domain": {"type": "string"},
        "category": {"type": "string"},
        "status": {"enum": list(ITEM_STATES)},
        "index_no": {"type": ["string", "null"], "description": "索引号, set on approval"},
        "latest_version": {"type": "integer"},
        "live_version": {"type": ["integer", "null"]},
        "created_at": _TIME,
        "updated_at": _TIME,
        "title": {"type": "string"},
        "deadline": {"type": "string", "format": "date"},
        "deadline_provisional": {"type": "boolean"},
    }
    delivery = {
        "id": {"type": "integer"},
        "channel": {"type": "string"},
        "action": {"enum": list(Action)},
        "status": {"enum": list(DeliveryStatus)},
        "attempts": {"type": "integer"},
        "next_attempt_at": _NULLABLE_TIME,
        "external_id": {"type": ["string", "null"]},
        "url": {"type": ["string", "null"]},
        "requested_at": _NULLABLE_TIME,
        "confirmed_at": _NULLABLE_TIME,
        "last_error": {"type": ["string", "null"]},
    }
    version = {
        "type": "object",
        "description": "A version's content and its deliveries; `published_at` is when the "
        "website (第一平台) had it live, `on_time` whether that was by its deadline",
        "required": ["version", "kind", "status", "deliveries"],
        "properties": {
            "version": {"type": "integer"},
            "kind": {"enum": list(VersionKind)},
            "status": {"enum": list(ItemStatus)},
            "change_note": {"type": ["string", "null"]},
            "changed_on": {"type": ["string", "null"], "format": "date"},
            "submitted_at": _TIME,
            "approved_at": _NULLABLE_TIME,
            "published_at": _NULLABLE_TIME,
            "on_time": {"type": ["boolean", "null"]},
            "deliveries": {"type": "array", "items": _ref("schemas", "ItemDelivery")},
        },
    }
    return {
        "ItemOut": {
            "type": "object",
            "description": "The item's latest content plus id, status, index_no, deadline, "
            "versions.",
            "required": ["id", "status", "deadline", "deadline_provisional", "versions"],
            "properties": {
                **head,
                "deadline_rule": {
                    "type": ["object", "null"],
                    "description": "the rule that set the deadline: kind (deadline or lead), "
                    "count, unit (working_days or days), from (what starts the clock) or before "
                    "(the event a notice precedes), basis (the legal citation), start, and the "
                    "rules' version (1: before per-category rules)",
                },
                "first_published_at": {
                    **_NULLABLE_TIME,
                    "description": "when the website (第一平台) first published it",
                },
                "versions": {"type": "array", "items": version},
            },
        },
        "ItemSummary": {
            "type": "object",
            "required": list(head),
            "properties": head,
        },
        "ItemPage": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": _ref("schemas", "ItemSummary")},
                "next_cursor": {"type": ["integer", "null"]},
                "next": {"type": "string", "description": "the next page's URL, if there is one"},
            },
        },
        "ItemDelivery": {
            "type": "object",
            "description": "A delivery of one version to one channel",
            "required": list(delivery),
            "properties": delivery,
        },
        "Delivery": {
            "type": "object",
            "description": "A delivery, with the item and version it carries",
            "required": ["item_id", "version", *delivery],
            "properties": {
                "item_id": {"type": "integer"},
                "version": {"type": "integer"},
                **delivery,
            },
        },
        "DeliveryPage": {
            "type": "object",
            "required": ["deliveries", "next_cursor"],
            "properties": {
                "deliveries": {"type": "array", "items": _ref("schemas", "Delivery")},
                "next_cursor": {"type": ["integer", "null"]},
            },
        },
        "Catalogue": {
            "type": "object",
            "required": ["version", "domains", "cross_domain", "withholding_bases"],
            "properties": {
                "version": {"type": ["string", "integer"]},
                "domains": {"type": "array", "items": {"type": "object"}},
                "cross_domain": {"type": "array", "items": {"type": "object"}},
                "withholding_bases": {"type": "array", "items": {"type": "object"}},
            },
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details; `errors` lists one message per field.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "pointer", "detail"],
                        "properties": {
                            "field": {"type": "string"},
                            "pointer": {"type": "string"},
                            "detail": {"type": "string"},
                        },
                    },
                },
            },
        },
    }


def _error_responses() -> dict[str, Any]:
    problem = {"application/problem+json": {"schema": _ref("schemas", "Problem")}}
    out: dict[str, Any] = {}
    for code, (name, description) in ERRORS.items():
        response: dict[str, Any] = {"description": description, "content": problem}
        if code in _HEADERS:
            response["headers"] = _HEADERS[code]
        out[name] = response
    return out


@functools.cache
def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(ItemIn, "validation"), (RevisionIn, "validation"), (WithdrawIn, "validation")],
        ref_template="#/components/schemas/{model}",
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "Gongkai disclosure API", "version": __version__},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "schemas": {
                **schemas.get("$defs", {}),
                **_response_schemas(),
                **openapi_audit.SCHEMAS,
            },
            "responses": _error_responses(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
