"""Test channels and a fake remote that speaks a small HTTP publishing protocol.

`FakeRemote` is a real aiohttp server on 127.0.0.1: it stores one post per idempotency key (as a
real publishing API with idempotency keys does), records every call, and can be told to fail
(503 with Retry-After, 400) or to hold a request (so a test can kill a worker mid-publish).
`RemoteChannel` publishes to it over HTTP and maps its answers to the channel error tree.
`ScriptedChannel` is an in-process channel whose outcomes a test scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from channels.base import (
    ChannelContext,
    PermanentError,
    Publication,
    Receipt,
    RetryableError,
    StepStore,
)
from channels.registry import Capability, ChannelSpec, Registry, make_registry


@dataclass
class FakeRemote:
    """The remote's state; `app()` serves it."""

    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    failures: deque[int] = field(default_factory=deque)  # statuses to answer next, in order
    hold: bool = False  # hold every request until `release` is set
    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = request.headers["Idempotency-Key"]
        self.calls[f"{request.path}:{key}"] += 1
        self.started.set()
        if self.hold:
            await asyncio.wait_for(self.release.wait(), 60)
        if self.failures:
            status = self.failures.popleft()
            headers = {"Retry-After": "0"} if status in (429, 503) else {}
            return web.json_response({"error": "told to fail"}, status=status, headers=headers)
        if request.path == "/publish":
            self.stored.setdefault(key, body)  # one post per key, however often it is sent
        else:
            self.stored.pop(body["published_key"], None)
        return web.json_response({"id": key, "url": f"http://remote.invalid/{key}"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/publish", self.handle)
        app.router.add_post("/withdraw", self.handle)
        return app


class RemoteChannel:
    """Publishes to a FakeRemote at `settings["remote_url"]`."""

    def __init__(self, name: str, base_url: str, session: aiohttp.ClientSession) -> None:
        self.name = name
        self.base_url = base_url
        self.session = session

    async def _post(self, path: str, pub: Publication, body: dict[str, Any]) -> Receipt:
        headers = {"Idempotency-Key": pub.key}
        try:
            async with self.session.post(
                self.base_url + path, json=body, headers=headers
            ) as response:
                data = await response.json()
                if response.status in (429, 503) or response.status >= 500:
                    retry_after = float(response.headers.get("Retry-After", "1"))
                    raise RetryableError(f"remote answered {response.status}", retry_after)
                if response.status >= 400:
                    raise PermanentError(f"remote refused: {response.status} {data}")
        except aiohttp.ClientError as exc:
            raise RetryableError(f"remote unreachable: {exc}") from exc
        return Receipt(external_id=data["id"], url=data["url"], confirmed_at=datetime.now(UTC))

    async def publish(self, pub: Publication) -> Receipt:
        return await self._post("/publish", pub, {"title": pub.title, "version": pub.version})

    async def withdraw(self, pub: Publication, receipt: Receipt) -> Receipt:
        return await self._post("/withdraw", pub, {"published_key": receipt.external_id})


@dataclass
class Script:
    """What ScriptedChannel does: fail `retryable` times, then maybe permanently, else succeed.

    With `hold`, each call waits for `release` (bounded) before it answers, so a test can act
    while a delivery is in flight. `save` lists step ids a multi-step channel saves, one per
    remote call, before its answer (`Capability.STEPS`); `pending` answers that many calls with
    a receipt to confirm later (`Capability.CONFIRM`).
    """

    retryable: int = 0
    permanent: bool = False
    hold: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    save: tuple[dict[str, Any], ...] = ()
    pending: int = 0
    calls: list[tuple[str, str]] = field(default_factory=list)  # (action, key)
    steps_seen: list[dict[str, Any]] = field(default_factory=list)  # pub.steps at each call
    active: int = 0
    max_active: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)


class ScriptedChannel:
    def __init__(self, name: str, script: Script, steps: StepStore | None = None) -> None:
        self.name = name
        self.script = script
        self.steps = steps

    async def _act(self, action: str, pub: Publication) -> Receipt:
        script = self.script
        script.calls.append((action, pub.key))
        script.steps_seen.append(dict(pub.steps))
        script.started.set()
        script.active += 1
        script.max_active = max(script.max_active, script.active)
        try:
            if script.hold:
                await asyncio.wait_for(script.release.wait(), 30)
        finally:
            script.active -= 1
        for step in script.save:  # a step done on an earlier try is not done again
            if not set(step) <= set(pub.steps) and self.steps is not None:
                await self.steps.save(pub.key, step)
        if script.retryable > 0:
            script.retryable -= 1
            raise RetryableError("scripted outage", retry_after=0)
        if script.permanent:
            raise PermanentError("scripted refusal")
        if script.pending > 0:
            script.pending -= 1
            return Receipt(external_id=pub.key, check_after=0.05, steps={"submitted": True})
        return Receipt(external_id=pub.key, url=f"http://x.invalid/{pub.key}",
                       confirmed_at=datetime.now(UTC))  # fmt: skip

    async def publish(self, pub: Publication) -> Receipt:
        return await self._act("publish", pub)

    async def withdraw(self, pub: Publication, receipt: Receipt) -> Receipt:
        return await self._act("withdraw", pub)

    async def confirm(self, pub: Publication, receipt: Receipt) -> Receipt:
        return await self._act("confirm", pub)


def scripted_registry(
    scripts: dict[str, Script], capabilities: frozenset[Capability] = frozenset()
) -> Registry:
    """Channels named like the real ones that do what their scripts say."""

    def spec(name: str, script: Script) -> ChannelSpec:
        def factory(ctx: ChannelContext) -> ScriptedChannel:
            return ScriptedChannel(ctx.name, script, ctx.steps)

        return ChannelSpec(name, factory, capabilities=capabilities)

    return make_registry(*(spec(name, script) for name, script in scripts.items()))


def remote_registry(remote_url: str) -> Registry:
    """website and feeds both publish to the fake remote (as two channels)."""

    def factory(ctx: ChannelContext) -> RemoteChannel:
        return RemoteChannel(ctx.name, remote_url, ctx.session)

    return make_registry(ChannelSpec("website", factory), ChannelSpec("feeds", factory))


@dataclass
class FakeHub:
    """A WebSub hub's publish endpoint on 127.0.0.1 (`serve()` yields its URL).

    It records the `hub.url` of every accepted `hub.mode=publish` request and every attempt, and
    answers 204 as public hubs do. `failures` are statuses to answer next, in order (a 503 or 400
    instead of accepting); a request that is not a form-encoded publish gets 400.
    """

    pings: list[str] = field(default_factory=list)  # accepted topics, in arrival order
    attempts: list[str] = field(default_factory=list)  # every topic posted, failed ones too
    failures: deque[int] = field(default_factory=deque)
    content_types: set[str] = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.Response:
        self.content_types.add(request.content_type)
        form = await request.post()
        topics = [str(t) for t in form.getall("hub.url", [])]
        self.attempts.extend(topics)
        if self.failures:
            return web.Response(status=self.failures.popleft(), text="told to fail")
        if form.get("hub.mode") != "publish" or not topics:
            return web.Response(status=400, text="hub.mode=publish and hub.url required")
        self.pings.extend(topics)
        return web.Response(status=204)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hub", self.handle)
        return app

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Run the hub on a free port; yields its URL (with a token the logs must not show)."""
        runner = web.AppRunner(self.app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            yield f"http://127.0.0.1:{port}/hub?token=hub-secret-token"
        finally:
            await runner.cleanup()
