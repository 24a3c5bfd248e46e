"""Fixtures of the outlet sandbox's tests: an outlet with a known secret, served on a free local
port, and an HTTP session to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from channels.media.sandbox import (
    Outlet,
    OutletSandbox,
    RunningOutlets,
    new_secret,
    running_outlets,
)
from tests.channels.media_sandbox.kit import NAME, Poster


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def outlet(secret: str) -> Outlet:
    return Outlet(NAME, [secret])


@pytest.fixture
def sandbox(outlet: Outlet) -> OutletSandbox:
    return OutletSandbox([outlet])


@pytest.fixture
async def running(sandbox: OutletSandbox) -> AsyncIterator[RunningOutlets]:
    async with running_outlets(sandbox) as served:
        yield served


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def poster(running: RunningOutlets, http: aiohttp.ClientSession) -> Poster:
    return Poster(running.base_url, http)
