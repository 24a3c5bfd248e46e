"""Fixtures of the WeChat sandbox's tests: a sandbox on a free local port with a settable clock
and a second account, raw HTTP and wechatpy clients, and a callback receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from wechatpy import WeChatClient

from channels.wechat.sandbox import (
    RunningSandbox,
    Sandbox,
    running_sandbox,
)
from tests.channels.wechat_sandbox.kit import (
    CALLBACK_TOKEN,
    OTHER_APPID,
    OTHER_SECRET,
    TIMEOUT,
    Api,
    Clock,
    Receiver,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(clock: Clock) -> Sandbox:
    sandbox = Sandbox(clock=clock)
    sandbox.add_account(OTHER_APPID, OTHER_SECRET)
    return sandbox


@pytest.fixture
async def running(sandbox: Sandbox) -> AsyncIterator[RunningSandbox]:
    async with running_sandbox(sandbox) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
        yield session


@pytest.fixture
def api(running: RunningSandbox, http: aiohttp.ClientSession) -> Api:
    return Api(running.base_url, http)


@pytest.fixture
async def wx(api: Api) -> WeChatClient:
    return await api.client()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/wechat/callback", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/wechat/callback"
        yield receiver
    finally:
        await runner.cleanup()


@pytest.fixture
async def pushing(api: Api, sandbox: Sandbox, receiver: Receiver) -> WeChatClient:
    """A client of an account whose events go to `receiver`."""
    sandbox.add_account("wxpush000000000001", "push-secret", receiver.url, CALLBACK_TOKEN)
    return await api.client("wxpush000000000001", "push-secret")
