"""The outlet sandbox over real HTTP: what it accepts, what it refuses and why, retries answered
as the first time, faults on demand, and an outage that keeps what was received."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import aiohttp
import pytest

from channels.media.sandbox import (
    BODY_LIMIT,
    Outlet,
    OutletSandbox,
    RunningOutlets,
    new_secret,
    running_outlets,
)
from channels.media.settings import secret_bytes
from tests.channels.media_sandbox.kit import NAME, Poster, event, headers
from tests.helpers import wait_until


def test_a_new_secret_is_a_standard_webhooks_secret_of_32_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(secret_bytes(first)) == 32


def test_an_outlet_name_is_one_path_segment() -> None:
    with pytest.raises(ValueError, match="outlet name"):
        OutletSandbox([Outlet("../x")])


async def test_a_signed_event_is_accepted_as_the_next_article(
    poster: Poster, outlet: Outlet, secret: str, running: RunningOutlets
) -> None:
    answer = await poster.send("7:1:media:xinhua", event(), secret)
    assert answer.status == 200
    assert answer.json == {"id": "art-1", "url": f"{running.base_url}/outlets/{NAME}/articles/1"}
    [got] = outlet.received
    assert (got.webhook_id, got.type, got.item_id, got.version, got.article_id) == (
        "7:1:media:xinhua", "item.published", 7, 1, "art-1",
    )  # fmt: skip
    assert got.data["agency"]["name"] == "示范市公共资源交易中心"
    second = await poster.send("7:2:media:xinhua", event("item.revised", version=2), secret)
    assert second.json["id"] == "art-2"
    assert outlet.types(7) == ["item.published", "item.revised"] and outlet.types(8) == []
    assert (outlet.attempts, outlet.duplicates, outlet.refused) == (2, 0, [])
    assert running.url_for(NAME) == f"{running.base_url}/outlets/{NAME}/events"


async def test_a_retry_is_answered_as_the_first_time_and_not_recorded_again(
    poster: Poster, outlet: Outlet, secret: str
) -> None:
    body = event()
    first = await poster.send("7:1:media:xinhua", body, secret)
    again = await poster.send("7:1:media:xinhua", body, secret)  # a new attempt, signed anew
    assert again.status == 200 and again.json == first.json
    assert len(outlet.received) == 1
    assert (outlet.attempts, outlet.duplicates) == (2, 1)


async def test_a_wrong_secret_is_refused_and_recorded(poster: Poster, outlet: Outlet) -> None:
    answer = await poster.send("7:1:media:xinhua", event(), new_secret())
    assert answer.status == 401 and "signature" in answer.json["error"].lower()
    assert outlet.received == [] and outlet.refused == [(401, answer.json["error"])]
    assert outlet.attempts == 1


@pytest.mark.parametrize(("age", "word"), [(timedelta(minutes=10), "old"),
                                           (timedelta(minutes=-10), "new")])  # fmt: skip
async def test_a_timestamp_beyond_five_minutes_is_refused(
    poster: Poster, outlet: Outlet, secret: str, age: timedelta, word: str
) -> None:
    answer = await poster.send("7:1:media:xinhua", event(), secret, age=age)
    assert answer.status == 401 and word in answer.json["error"]
    assert outlet.received == [] and len(outlet.refused) == 1


async def test_during_a_rotation_any_one_signature_or_secret_verifies(
    poster: Poster, outlet: Outlet, secret: str
) -> None:
    old = new_secret()
    # The sender signs with the old secret and the new; the outlet knows only the new one.
    answer = await poster.send("7:1:media:xinhua", event(), old, secret)
    assert answer.status == 200
    # The outlet accepts both while it switches; the sender signs with the old one only.
    outlet.secrets = [secret, old]
    answer = await poster.send("8:1:media:xinhua", event(item_id=8), old)
    assert answer.status == 200 and len(outlet.received) == 2 and outlet.refused == []


GARBAGE: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not JSON", b"<xml>nope</xml>"),
    ("not UTF-8", "示范".encode("gbk")),
    ("a JSON array", b"[1, 2]"),
    ("deep nesting", b"[" * 100_000),
    ("no type", json.dumps({"data": {"item_id": 1, "version": 1}}).encode()),
    ("unknown type", json.dumps({"type": "item.deleted", "data": {"item_id": 1,
                                                                  "version": 1}}).encode()),
    ("data not an object", json.dumps({"type": "item.published", "data": [1]}).encode()),
    ("item_id a string", json.dumps({"type": "item.published",
                                     "data": {"item_id": "1", "version": 1}}).encode()),
    ("version a bool", json.dumps({"type": "item.published",
                                   "data": {"item_id": 1, "version": True}}).encode()),
]  # fmt: skip


@pytest.mark.parametrize(("what", "body"), GARBAGE, ids=[what for what, _ in GARBAGE])
async def test_a_signed_body_that_is_no_event_answers_400(
    poster: Poster, outlet: Outlet, secret: str, what: str, body: bytes
) -> None:
    text = body.decode("utf-8", errors="replace")  # what a sender would have signed
    answer = await poster.post(body, headers("1:1:media:xinhua", text, secret))
    assert answer.status == 400, what
    assert outlet.received == [] and outlet.refused == [(400, answer.json["error"])]


BAD_HEADERS: list[tuple[str, dict[str, str]]] = [
    ("no headers", {}),
    ("no signature", {"webhook-signature": ""}),
    ("timestamp not a number", {"webhook-timestamp": "yesterday"}),
    ("timestamp not finite", {"webhook-timestamp": "nan"}),
    ("timestamp huge", {"webhook-timestamp": "1e300"}),
    ("signature without a version", {"webhook-signature": "abc"}),
    ("signature of three parts", {"webhook-signature": "v1,a,b"}),
    ("signature not base64", {"webhook-signature": "v1,###"}),
    ("signature of another version", {"webhook-signature": "v9,AAAA"}),
]


@pytest.mark.parametrize(("what", "changes"), BAD_HEADERS, ids=[w for w, _ in BAD_HEADERS])
async def test_bad_headers_answer_401_never_500(
    poster: Poster, outlet: Outlet, secret: str, what: str, changes: dict[str, str]
) -> None:
    body = event()
    head = headers("1:1:media:xinhua", body, secret) | changes
    if not changes:
        head = {"Content-Type": "application/json"}
    answer = await poster.post(body, head)
    assert answer.status == 401, what
    assert outlet.received == [] and outlet.refused == [(401, answer.json["error"])]


async def test_an_id_header_of_undecodable_bytes_is_refused(
    running: RunningOutlets, outlet: Outlet, secret: str
) -> None:
    # aiohttp's client will not send such a header: write the request by hand.
    host, port = running.base_url.removeprefix("http://").split(":")
    body = event().encode()
    head = headers("x", event(), secret)
    request = (
        (
            f"POST /outlets/{NAME}/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"webhook-timestamp: {head['webhook-timestamp']}\r\n"
            f"webhook-signature: {head['webhook-signature']}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n"
        ).encode()
        + b"webhook-id: \xff\xfe\r\n\r\n"
        + body
    )
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 10)
    try:
        writer.write(request)
        status_line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    assert status_line.split()[1] == b"401"
    assert outlet.received == [] and outlet.refused == [
        (401, "malformed webhook-id or webhook-signature")
    ]


async def test_too_large_a_body_answers_413(poster: Poster, outlet: Outlet, secret: str) -> None:
    body = event(body_text="字" * (BODY_LIMIT // 3 + 1))
    answer = await poster.send("1:1:media:xinhua", body, secret)
    assert answer.status == 413 and outlet.received == [] and outlet.refused[0][0] == 413


async def test_an_unknown_outlet_answers_404(poster: Poster, secret: str) -> None:
    answer = await poster.send("1:1:media:other", event(), secret, name="other")
    assert answer.status == 404 and "error" in answer.json


async def test_a_scripted_status_refuses_once_then_the_event_is_accepted(
    poster: Poster, outlet: Outlet, secret: str
) -> None:
    outlet.script = [503, 429, 500]
    body = event()
    for status in (503, 429, 500):
        answer = await poster.send("7:1:media:xinhua", body, secret)
        assert answer.status == status and "error" in answer.json
        assert answer.headers.get("Retry-After") == ("1" if status != 500 else None)
    answer = await poster.send("7:1:media:xinhua", body, secret)
    assert answer.status == 200 and answer.json["id"] == "art-1"
    assert [status for status, _ in outlet.refused] == [503, 429, 500]
    assert (outlet.attempts, len(outlet.received), outlet.script) == (4, 1, [])


async def test_a_scripted_redirect_and_success_accept_nothing(
    poster: Poster, outlet: Outlet, secret: str
) -> None:
    outlet.script = [301, 204]
    moved = await poster.send("7:1:media:xinhua", event(), secret)
    assert moved.status == 301 and moved.headers["Location"].endswith(f"/outlets/{NAME}/events")
    lost = await poster.send("7:1:media:xinhua", event(), secret)
    assert lost.status == 204  # said yes, kept nothing: a lost event
    assert outlet.received == [] and [s for s, _ in outlet.refused] == [301]


async def test_a_slow_outlet_keeps_the_event_the_sender_gave_up_on(
    poster: Poster, outlet: Outlet, secret: str
) -> None:
    outlet.script = [0.5]
    body = event()
    with pytest.raises(TimeoutError):
        await poster.post(body, headers("7:1:media:xinhua", body, secret), within=0.1)
    await wait_until(lambda: len(outlet.received) == 1, 10)
    again = await poster.send("7:1:media:xinhua", body, secret)  # the sender's retry
    assert again.status == 200 and again.json["id"] == "art-1"
    assert (len(outlet.received), outlet.duplicates) == (1, 1)


async def test_an_outlet_down_for_a_while_keeps_what_it_received(
    sandbox: OutletSandbox, outlet: Outlet, secret: str, http: aiohttp.ClientSession
) -> None:
    body = event()
    async with running_outlets(sandbox) as up:
        first = await Poster(up.base_url, http).send("7:1:media:xinhua", body, secret)
        port = up.base_url.rsplit(":", 1)[1]
    with pytest.raises(aiohttp.ClientConnectionError):
        await Poster(up.base_url, http).send("7:1:media:xinhua", body, secret)
    async with running_outlets(sandbox, port=int(port)) as again:
        assert again.base_url == up.base_url
        answer = await Poster(again.base_url, http).send("7:1:media:xinhua", body, secret)
    assert answer.status == 200 and answer.json == first.json
    assert (len(outlet.received), outlet.duplicates) == (1, 1)
