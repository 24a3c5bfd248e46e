"""WebSub publisher side: tell the hub that a feed (a topic) has new content.

Target: the hub at `settings["hub_url"]` (W3C WebSub). The Recommendation leaves the publish
request to the hub; the form every public hub accepts (PubSubHubbub 0.4, websub.rocks) is a POST
of `application/x-www-form-urlencoded` `hub.mode=publish&hub.url=<topic URL>`, answered 2xx
(usually 204). Some hubs take several `hub.url` values in one request and some do not, so this
sends one request per topic, a few at a time.

Limits and quirks:

- A ping is a hint: the hub fetches the topic itself, so a lost ping delays subscribers, it
  loses nothing. `announce` never raises. A timeout, a connection error, 429 or 5xx is retried
  `attempts` times in all with a doubling backoff from `backoff` seconds; any other answer is
  logged and dropped (a hub that refuses a topic will refuse it again).
- The hub URL may carry a token (userinfo or query): logs show only its scheme, host and path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

import aiohttp

log = logging.getLogger(__name__)

ATTEMPTS = 3
BACKOFF = 0.5  # seconds before the second attempt; doubled before each further one
TIMEOUT = 10.0  # seconds for one request
PARALLEL = 4  # requests in flight to the hub at once


def hub_url(value: object) -> str:
    """`value` as a hub URL ("" for none); ValueError (a start-up error) if it is not http(s)."""
    url = str(value or "").strip()
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("settings['hub_url'] must be an http(s) URL")
    return url


class Hub:
    """Announces topics to one hub over a shared aiohttp session."""

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
        timeout: float = TIMEOUT,
    ) -> None:
        self.url = url
        self.session = session
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        parts = urlsplit(url)
        self.shown = f"{parts.scheme}://{parts.hostname}{parts.path}"  # no userinfo, no query
        self._slots = asyncio.Semaphore(PARALLEL)

    async def announce(self, topics: Iterable[str]) -> dict[str, bool]:
        """Ping the hub once per topic; topic -> whether the hub accepted it. Never raises."""
        unique = sorted(set(topics))
        results = await asyncio.gather(*(self._ping(topic) for topic in unique))
        return dict(zip(unique, results, strict=True))

    async def _ping(self, topic: str) -> bool:
        form = {"hub.mode": "publish", "hub.url": topic}
        for attempt in range(1, self.attempts + 1):
            retryable = True
            try:
                async with (
                    self._slots,
                    self.session.post(self.url, data=form, timeout=self.timeout) as response,
                ):
                    await response.read()
                    if 200 <= response.status < 300:
                        return True
                    problem = f"answered {response.status}"
                    retryable = response.status == 429 or response.status >= 500
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"failed: {type(exc).__name__}"
            log.warning(
                "websub: hub %s %s for %s (attempt %d of %d)",
                self.shown, problem, topic, attempt, self.attempts,
            )  # fmt: skip
            if not retryable or attempt == self.attempts:
                return False
            await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        return False
