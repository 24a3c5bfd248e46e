"""The API against its OpenAPI document (/api/v1/openapi.json): every route under /api/v1 is in
it, and a schemathesis run over the served document, against the real app on 127.0.0.1 with a
real database and real tokens, finds no server error, no status the document does not list, and
no response that breaks its documented schema, media type or headers.

The run is bounded: `EXAMPLES` cases per operation and generation mode (valid input, and input
the document makes invalid), derandomized (the same cases on every run), no shrinking; a few
seconds in all. To look harder once, raise `EXAMPLES` (300 takes about a minute).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

import hypothesis
import requests
import schemathesis
import sqlalchemy as sa
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dispatcher.http.app import create_app
from dispatcher.http.openapi import openapi_document
from dispatcher.rules.states import DeliveryStatus
from dispatcher.settings import load_settings
from dispatcher.storage.db import Database
from dispatcher.storage.models import deliveries
from tests.helpers import OTHER, Client, TokenFactory, approve_via_api, bid_candidates

PREFIX = "/api/v1"
EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    suppress_health_check=list(hypothesis.HealthCheck),
)
Tokens = dict[str, list[dict[str, str]]]


def _documented(spec: dict[str, Any]) -> set[tuple[str, str]]:
    base = spec["servers"][0]["url"]
    return {
        (method.upper(), base + path)
        for path, operations in spec["paths"].items()
        for method in operations
    }


def _openapi_path(canonical: str) -> str:
    """An aiohttp route's path with OpenAPI's parameters: `{id:\\d{1,15}}` -> `{id}`."""
    return re.sub(r"\{(\w+):[^/]*\}", r"{\1}", canonical)


def test_every_route_under_the_api_is_documented(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/unused.db",
           "GONGKAI_DATA_DIR": str(tmp_path / "var")}  # fmt: skip
    app = create_app(load_settings(env=env, path=None))  # its routes; it is never started
    routes = {
        (route.method, _openapi_path(route.resource.canonical))
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith(PREFIX + "/")
        and route.method != "HEAD"  # aiohttp adds one to every GET
    }
    documented = _documented(openapi_document())
    assert routes, "no routes under /api/v1?"
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "documented operations without a route"


def test_the_document_is_valid_openapi_3_1() -> None:
    schema = schemathesis.openapi.from_dict(openapi_document())
    schema.validate()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(_documented(openapi_document()))


async def _seed(api: Client, db: Database, make_token: TokenFactory) -> list[int]:
    """An approved item with deliveries (the first one failed) and a submitted one; the ids
    that name something (items 1 and 2, that delivery)."""
    await approve_via_api(api, make_token)
    editor = await make_token("editor", holder="编辑")
    pending = bid_candidates(project_code="E9901000009999999")
    created = await api.post(f"{PREFIX}/items", json=pending, headers=editor)
    assert created.status == 201, await created.text()
    async with db.transaction() as conn:
        first = (await conn.execute(sa.select(sa.func.min(deliveries.c.id)))).scalar_one()
        await conn.execute(
            deliveries.update()
            .where(deliveries.c.id == first)
            .values(status=DeliveryStatus.FAILED, last_error="the test failed it")
        )
    return sorted({1, 2, first})


async def _tokens(make_token: TokenFactory) -> Tokens:
    """Headers by role, of the items' agency (the approver is not the submitter); then those
    every operation is also tried with: another agency's token, and none."""
    return {
        "editor": [await make_token("editor", holder="编辑")],
        "approver": [await make_token("approver", holder="另一位审核")],
        "auditor": [await make_token("auditor", holder="审计")],
        "admin": [await make_token("admin", holder="管理")],
        "anyone else": [await make_token("approver", agency=OTHER, holder="外局"), {}],
    }


def _cases(operation: Any, mode: GenerationMode, ids: list[int]) -> st.SearchStrategy[Any]:
    """The operation's cases; half the valid ones name an existing item or delivery, or send
    an item intake accepts (random text is never a catalogue category)."""
    cases = operation.as_strategy(generation_mode=mode)
    if mode is not GenerationMode.POSITIVE:
        return cases
    if operation.definition.raw.get("operationId") == "submitItem":
        items = st.sampled_from([bid_candidates(), bid_candidates(project_code=f"E99{9:014d}")])
        good = items.flatmap(lambda item: operation.as_strategy(generation_mode=mode, body=item))
        return st.one_of(good, cases)
    if "{id}" in operation.path:
        existing = st.sampled_from(ids).flatmap(
            lambda i: operation.as_strategy(generation_mode=mode, path_parameters={"id": i})
        )
        return st.one_of(existing, cases)
    return cases


def _headers(operation: Any, tokens: Tokens) -> list[dict[str, str]]:
    """Tokens for `operation`: those of the roles it allows (`x-roles`) twice, then the rest."""
    allowed = operation.definition.raw.get("x-roles", [])
    mine = [t for role in allowed for t in tokens[role]]
    return mine + mine + [t for role, some in tokens.items() if role not in allowed for t in some]


def _run(
    spec: dict[str, Any], base_url: str, tokens: Tokens, ids: list[int], seen: Counter[int]
) -> list[str]:
    """Every operation, valid and invalid input, each case with one of `tokens`; the failures.
    `seen` counts the statuses answered."""
    assert base_url.startswith("http://127.0.0.1:")
    config = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})
    schema = schemathesis.openapi.from_dict(spec, config=config)
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: 127.0.0.1 only
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @SETTINGS
            @hypothesis.given(
                case=_cases(operation, mode, ids),
                token=st.sampled_from(_headers(operation, tokens)),
            )
            def check(case: schemathesis.Case, token: dict[str, str]) -> None:
                response = case.call(base_url=base_url, session=session, headers=token)
                assert response.request.url.startswith(base_url)
                seen[response.status_code] += 1
                case.validate_response(response, checks=CHECKS, headers=token)

            try:
                check()
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing the document lets it make invalid: no parameters, no body
            except (Exception, FailureGroup) as exc:
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    session.close()
    return failures


async def test_schemathesis_finds_no_server_error_and_no_undocumented_status(
    api: Client, db: Database, make_token: TokenFactory
) -> None:
    ids = await _seed(api, db, make_token)
    tokens = await _tokens(make_token)
    served = await api.get(f"{PREFIX}/openapi.json")
    assert served.status == 200
    spec = await served.json()
    base_url = str(api.make_url(PREFIX))
    seen: Counter[int] = Counter()
    # The client is synchronous: it runs in a thread while this loop serves the app.
    run = asyncio.to_thread(_run, spec, base_url, tokens, ids, seen)
    failures = await asyncio.wait_for(run, 50)
    assert failures == [], "\n\n".join(failures)
    # Not only refusals: the cases reached the handlers' work, and their errors.
    assert {200, 201, 401, 403, 404, 409, 422} <= set(seen), seen
