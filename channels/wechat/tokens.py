"""An account's access token (or cover material id), shared by every worker through Redis,
fetched by one at a time.

WeChat keeps one valid token per account: fetching a new one invalidates the old. So workers
that each fetched their own would keep invalidating each other's. Here the token lives in Redis
under the appid; whoever finds it missing takes a short Redis lock and fetches it, the others
wait for it to appear. A call that is told its token is invalid (40001/40014/42001) drops that
token only if it is still the current one (`invalidate`), so eight concurrent callers holding
the same stale token cause one refresh, not eight. The cover's material id is kept the same way
(`what="thumb:…"`): each worker's first article would otherwise upload it again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from channels.base import RetryableError

# Fetches a fresh token: (token, seconds it is valid).
Fetch = Callable[[], Awaitable[tuple[str, int]]]

EARLY = 300  # seconds: a token is replaced this long before WeChat expires it
LOCK_SECONDS = 30  # a fetcher that died frees the lock after this
_WAIT_STEP = 0.05  # how often a waiter looks for the token another worker is fetching

# Delete the token only if it is still the one the caller found invalid.
_DROP_IF_SAME = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@dataclass
class TokenStore:
    """The token of one appid, in `redis` (a redis.asyncio client) or, without one, in memory
    (one process only; the sandbox and unit tests)."""

    appid: str
    fetch: Fetch
    redis: Any = None
    what: str = "token"  # the value's name under the appid in Redis
    wait_limit: float = 20.0  # seconds a caller waits for another worker's fetch
    fetches: int = 0  # tokens this process fetched (for tests and the benchmark)
    _local: tuple[str, float] | None = None
    _guard: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def _key(self) -> str:
        return f"gongkai:wechat:{self.appid}:{self.what}"

    async def get(self) -> str:
        """The current token, fetching one if there is none."""
        token = await self._current()
        if token is not None:
            return token
        async with self._guard:  # this process's callers queue here, not on Redis
            token = await self._current()
            return token if token is not None else await self._refresh()

    async def invalidate(self, token: str) -> None:
        """WeChat refused `token`: forget it, unless another caller already replaced it."""
        if self.redis is None:
            if self._local is not None and self._local[0] == token:
                self._local = None
            return
        await self.redis.eval(_DROP_IF_SAME, 1, self._key, token)

    async def _current(self) -> str | None:
        if self.redis is None:
            if self._local is not None and self._local[1] > time.monotonic():
                return self._local[0]
            return None
        value = await self.redis.get(self._key)
        return value.decode() if isinstance(value, bytes) else value

    async def _refresh(self) -> str:
        if self.redis is None:
            token, seconds = await self._fetch()
            self._local = (token, time.monotonic() + max(seconds - EARLY, 60))
            return token
        lock, mine = f"{self._key}:lock", uuid.uuid4().hex
        deadline = time.monotonic() + self.wait_limit
        while time.monotonic() < deadline:
            if await self.redis.set(lock, mine, nx=True, ex=LOCK_SECONDS):
                try:
                    current = await self._current()  # fetched while we waited for the lock
                    if current is not None:
                        return current
                    token, seconds = await self._fetch()
                    await self.redis.set(self._key, token, ex=max(seconds - EARLY, 60))
                    return token
                finally:
                    await self.redis.eval(_DROP_IF_SAME, 1, lock, mine)
            await asyncio.sleep(_WAIT_STEP)  # another worker is fetching: wait for its token
            fetched = await self._current()
            if fetched is not None:
                return fetched
        raise RetryableError(f"WeChat account {self.appid}: no {self.what} after waiting "
                             f"{self.wait_limit:.0f} s for another worker to fetch it")  # fmt: skip

    async def _fetch(self) -> tuple[str, int]:
        self.fetches += 1
        return await self.fetch()
