"""One news outlet (`media:NAME`): each approved version, revision and withdrawal that concerns
it, POSTed as a signed Standard Webhooks event to its URL.

- `webhook-id` is the delivery key (`{item}:{version}:{channel}`), the same on every retry, so
  the outlet de-duplicates by it; `webhook-timestamp` is the attempt's time, and
  `webhook-signature` the HMAC-SHA256 of `id.timestamp.body` with the outlet's secret (and, while
  a rotation's grace period runs, with the previous one too), by the `standardwebhooks` package.
- Answers: 2xx is published (a JSON answer's `id` and `url` are recorded); 408, 425, 429, 5xx,
  a timeout or a failed connection are retried, no sooner than a `Retry-After`; a redirect is not
  followed and fails with its location; any other status fails at once with the first 500 bytes
  of the answer.
- An item outside the outlet's `domains` / `regions` is skipped for it, with the reason. A
  withdrawal goes wherever the item went (the dispatcher skips it where nothing was published).
- The secret is never in a message, a log line or the channel's `repr`.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from standardwebhooks.webhooks import Webhook

from channels.base import NotForChannel, PermanentError, Publication, Receipt, RetryableError
from channels.media.events import event_body
from channels.media.pacing import Pace

SNIPPET = 500  # bytes of a refusing answer kept in the delivery's error
ANSWER_LIMIT = 65_536  # bytes of an answer read at most
RETRY_STATUSES = frozenset({408, 425, 429})
USER_AGENT = "Gongkai-Webhooks/1"


@dataclass(frozen=True)
class Signer:
    """A secret that signs until `until` (None: for good)."""

    webhook: Webhook
    until: datetime | None = None

    def __repr__(self) -> str:
        return f"Signer(until={self.until!r})"


class MediaChannel:
    def __init__(
        self,
        name: str,
        url: str,
        signers: Sequence[Signer],
        session: Any,
        base_url: str,
        *,
        timeout: float = 10.0,
        pace: Pace | None = None,
        domains: Sequence[str] = (),
        regions: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.url = url
        self.signers = tuple(signers)
        self.session = session
        self.base_url = base_url
        self.timeout = timeout
        self.pace = pace
        self.domains = tuple(domains)
        self.regions = tuple(regions)

    def __repr__(self) -> str:
        return f"MediaChannel({self.name!r}, {self.url!r})"

    async def publish(self, pub: Publication) -> Receipt:
        if self.domains and pub.domain not in self.domains:
            raise NotForChannel(f"{self.name} takes only the domains {', '.join(self.domains)}")
        if self.regions and not pub.region.startswith(self.regions):
            raise NotForChannel(f"{self.name} takes only the regions {', '.join(self.regions)}")
        return await self.send(pub)

    async def withdraw(self, pub: Publication, receipt: Receipt) -> Receipt:
        return await self.send(pub)

    def headers(self, msg_id: str, now: datetime, body: str) -> dict[str, str]:
        """The Standard Webhooks headers of one attempt."""
        signatures = [s.webhook.sign(msg_id, now, body) for s in self.signers
                      if s.until is None or now < s.until]  # fmt: skip
        return {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": " ".join(signatures),
        }

    async def send(self, pub: Publication) -> Receipt:
        if self.pace is not None:
            await self.pace.slot()
        now = datetime.now(UTC).replace(microsecond=0)
        body = event_body(pub, self.base_url, now)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with self.session.post(
                self.url,
                data=body.encode("utf-8"),
                headers=self.headers(pub.key, now, body),
                allow_redirects=False,
                timeout=timeout,
            ) as response:
                answer = await _read(response)
                return self._outcome(response, answer)
        except TimeoutError:
            raise RetryableError(f"{self.name}: no answer within {self.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise RetryableError(f"{self.name}: {type(exc).__name__}: {exc}") from None

    def _outcome(self, response: aiohttp.ClientResponse, answer: bytes) -> Receipt:
        status = response.status
        said = answer[:SNIPPET].decode("utf-8", errors="replace")
        if 200 <= status < 300:
            found = _answer_ids(answer)
            return Receipt(
                external_id=found.get("id"),
                url=found.get("url"),
                confirmed_at=datetime.now(UTC),
            )
        if 300 <= status < 400:
            where = response.headers.get("Location", "(no Location)")[:500]
            raise PermanentError(
                f"{self.name}: HTTP {status} redirects to {where}; redirects are not followed: "
                "set the outlet's URL to where it points"
            )
        if status in RETRY_STATUSES or status >= 500:
            wait = retry_after(response.headers.get("Retry-After"))
            raise RetryableError(f"{self.name}: HTTP {status}: {said}", retry_after=wait)
        raise PermanentError(f"{self.name}: HTTP {status}: {said}")


async def _read(response: aiohttp.ClientResponse) -> bytes:
    """The answer's first `ANSWER_LIMIT` bytes (an outlet's answer is small; no more is read)."""
    chunks, size = [], 0
    while size < ANSWER_LIMIT:
        chunk = await response.content.read(ANSWER_LIMIT - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _answer_ids(answer: bytes) -> dict[str, str]:
    """The outlet's own `id` and `url` for the article, from a JSON answer, when it gives them."""
    try:
        parsed = json.loads(answer) if answer.strip() else {}
    except ValueError:
        return {}
    found: dict[str, str] = {}
    if not isinstance(parsed, dict):
        return found
    raw_id = parsed.get("id")
    if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) and str(raw_id).strip():
        found["id"] = str(raw_id)[:200]
    url = parsed.get("url")
    if isinstance(url, str) and url.startswith(("http://", "https://")) and len(url) <= 1000:
        found["url"] = url
    return found


def retry_after(value: str | None) -> float | None:
    """Seconds a `Retry-After` asks for (delta-seconds or an HTTP date), at most a day."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), 86400.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - datetime.now(UTC)).total_seconds(), 0.0), 86400.0)
