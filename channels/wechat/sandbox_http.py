"""The WeChat sandbox's own HTTP: reading a request as WeChat does, pushing an event as WeChat does.

Requests answer with WeChat's error codes (`WxError`), not HTTP errors: a body that is not a JSON
object is 47001, a missing upload 41005, an upload over the app's size limit 40009. wechatpy
posts JSON without a content type, so bodies are read as bytes. The PUBLISHJOBFINISH push is
signed as WeChat signs it and tried once; a failure is logged, never raised, since nothing in
the sandbox waits on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from channels.wechat import sandbox_page
from channels.wechat.sandbox_records import Account, PublishJob, WxError

# The sandbox's one logger, whichever of its modules writes: a filter on it catches them all.
log = logging.getLogger("channels.wechat.sandbox")

PUSH_TIMEOUT = 5.0  # seconds for one event push; a failed push is not repeated


def base_url(request: web.Request) -> str:
    """Where the request reached the sandbox: the URLs it hands out are built on it."""
    return f"{request.scheme}://{request.host}"


async def json_body(request: web.Request) -> dict[str, Any]:
    """The JSON object a POST carries (wechatpy sends it without a content type)."""
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise WxError(47001) from None
    if not isinstance(body, dict):
        raise WxError(47001)
    return body


async def media_bytes(request: web.Request) -> bytes:
    """The multipart field `media`; 41005 if there is none or it is empty."""
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise WxError(40009) from None
    field_ = form.get("media")
    if isinstance(field_, web.FileField):
        data = field_.file.read()
    else:
        data = field_.encode() if isinstance(field_, str) else bytes(field_ or b"")
    if not data:
        raise WxError(41005)
    return data


async def push_event(
    account: Account, job: PublishJob, urls: Sequence[str], clock: Callable[[], float]
) -> None:
    """POST the PUBLISHJOBFINISH event of `job` (its articles at `urls`) to the account's callback.

    Signed as WeChat signs it, with the time of `clock` when it is sent; one try, failures logged.
    """
    timestamp, nonce = str(int(clock())), secrets.token_hex(8)
    parts = sorted([account.callback_token, timestamp, nonce])
    signature = hashlib.sha1("".join(parts).encode()).hexdigest()  # noqa: S324 (WeChat's)
    body = sandbox_page.publish_event(
        account.gh_id, timestamp, job.publish_id, job.status, job.article_id,
        urls, len(job.articles),
    )  # fmt: skip
    params = {"signature": signature, "timestamp": timestamp, "nonce": nonce}
    timeout = aiohttp.ClientTimeout(total=PUSH_TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(
                account.callback_url,
                params=params,
                data=body.encode(),
                headers={"Content-Type": "text/xml"},
            ) as response,
        ):
            await response.read()
            if response.status >= 400:
                log.warning("sandbox: event push answered HTTP %s", response.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("sandbox: event push failed: %s", type(exc).__name__)
