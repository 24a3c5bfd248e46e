"""At most `rate` requests per second to one outlet, however many workers send to it.

Each request reserves the outlet's next free slot (a time) and waits until then. With the
workers' shared Redis the slot is kept there and reserved by one script, on Redis's clock, so the
rate holds across worker processes and machines; without one (a test, a bench), in this process.
A wait longer than `max_wait` is not taken: the delivery is retried that much later instead of
holding a worker.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels.base import RetryableError

# KEYS[1]: the next free slot, in microseconds since the epoch. ARGV: interval, max wait (µs).
# Returns the wait in µs, or minus it when it is longer than the max wait (nothing reserved).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(now, free)
local wait = start - now
if wait > tonumber(ARGV[2]) then return -wait end
local ttl = math.ceil((wait + tonumber(ARGV[1])) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', start + tonumber(ARGV[1])), 'PX', ttl)
return wait
"""


class Pace:
    """The slots of one outlet (`key`); `rate` 0 means no limit."""

    def __init__(self, key: str, rate: float, redis: Any = None, max_wait: float = 30.0) -> None:
        self.key = f"gongkai:media:pace:{key}"
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.max_wait = max_wait
        self._script = redis.register_script(_RESERVE) if redis is not None and rate > 0 else None
        self._free = 0.0  # in this process: the next free slot (time.monotonic)
        self._lock = asyncio.Lock()

    async def slot(self) -> None:
        """Wait for this request's slot; RetryableError if it is further off than `max_wait`."""
        if self.interval == 0:
            return
        script = self._script
        wait = await (self._shared(script) if script is not None else self._local())
        if wait < 0:
            raise RetryableError(
                f"more than {self.max_wait:g} s of requests are queued for this outlet",
                retry_after=-wait,
            )
        if wait > 0:
            await asyncio.sleep(wait)

    async def _shared(self, script: Any) -> float:
        micros = int(await script(keys=[self.key], args=[
            int(self.interval * 1e6), int(self.max_wait * 1e6)]))  # fmt: skip
        return micros / 1e6

    async def _local(self) -> float:
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._free)
            wait = start - now
            if wait > self.max_wait:
                return -wait
            self._free = start + self.interval
            return wait
