"""One account's WeChat API: wechatpy's client, with the token from the shared `TokenStore`.

wechatpy is synchronous (requests), so every call runs in a thread and the event loop never
waits on it. Its own retry on an invalid token is off (it recursed without limit and each caller
refreshed the token); instead a call told its token is invalid drops it (once for all callers)
and is made once more with a fresh one. Its token URL is hard-coded to the real host; the token
is fetched here, from `api_base`, like every other call. A call that uploads is given bytes and
builds its file object afresh for each try, so a retry never sends an empty file.

WeChat's error codes become the channel's errors (`classify`): busy and rate limits retry,
quotas wait for the next window, everything else is permanent with its code and message.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from channels.base import SHANGHAI, ChannelError, PermanentError, RetryableError
from channels.wechat.tokens import TokenStore

T = TypeVar("T")

BUSY = {-1: 5.0, 45011: 60.0}  # errcode -> seconds to wait: system busy, per-minute limit
TOKEN_REFUSED = {40001, 40014, 42001}  # invalid credential, invalid token, token expired
QUOTA = {45009, 45028}  # daily API quota reached, no mass-send quota left: the next Beijing day
_NOT_ALLOWED = "this server's IP is not on the account's IP allow-list (设置与开发 → 基本配置)"
HINTS = {
    40164: _NOT_ALLOWED,
    61004: _NOT_ALLOWED,
    48001: "the account lacks this API permission (发布 and 群发 need a verified account)",
    40013: "the appid is not an official account's",
    40125: "the secret (AppSecret) is wrong or was reset",
}


class QuotaExhausted(RetryableError):
    """A daily quota is used up (45009, 45028): nothing helps before the quota's next window."""


class WechatRefused(PermanentError):
    """WeChat answered an error code that no retry will change; `code` says which."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Client(WeChatClient):  # type: ignore[misc]
    """wechatpy's client whose token is the one handed to the thread making the call."""

    _per_thread = threading.local()

    @property
    def access_token(self) -> str:
        return str(self._per_thread.token)


def upload(data: bytes, filename: str) -> io.BytesIO:
    """A fresh file object for one try of an upload (requests takes the name from `.name`)."""
    stream = io.BytesIO(data)
    stream.name = filename
    return stream


def seconds_to_next_day(now: datetime | None = None) -> float:
    """Seconds until the next Beijing midnight (+1 min): when WeChat's daily quotas reset."""
    now = (now or datetime.now(SHANGHAI)).astimezone(SHANGHAI)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=1, second=0, microsecond=0)
    return (midnight - now).total_seconds()


def classify(what: str, code: int | None, message: str, http_status: int | None = None
             ) -> ChannelError:  # fmt: skip
    """The channel error for WeChat's answer `code`/`message` to the call `what`."""
    text = f"WeChat {what}: {code} {message}".rstrip()
    if code in BUSY:
        return RetryableError(text, retry_after=BUSY[code])
    if code in QUOTA:
        return QuotaExhausted(f"{text} (quota; waiting for the next day)", seconds_to_next_day())
    if code in TOKEN_REFUSED:
        return RetryableError(f"{text} (refused again after a fresh token: another program "
                              "may be fetching this account's tokens)")  # fmt: skip
    if code is None:  # an HTTP-level failure
        retry = http_status is None or http_status >= 500 or http_status == 429
        text = f"WeChat {what}: HTTP {http_status}"
        return RetryableError(text) if retry else PermanentError(text)
    hint = HINTS.get(code)
    return WechatRefused(f"{text}: {hint}" if hint else text, code)


class WechatApi:
    """The calls one account makes, each bounded in time and in tries."""

    def __init__(self, appid: str, secret: str, api_base: str, timeout: float, redis: Any) -> None:
        self.appid = appid
        self._secret = secret
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self._client = _Client(appid, secret, timeout=timeout, auto_retry=False)
        self._client.API_BASE_URL = f"{self.api_base}/cgi-bin/"
        self.tokens = TokenStore(appid, self._fetch_token, redis)
        self.calls = 0  # API calls this process made, token fetches included

    async def call(self, what: str, request: Callable[[WeChatClient], T]) -> T:
        """`request(client)` in a thread; one fresh token and one more try if the token is
        refused; WeChat's errors as channel errors."""
        for last in (False, True):
            token = await self.tokens.get()
            try:
                return await asyncio.to_thread(self._run, token, request)
            except WeChatClientException as exc:
                code = None if exc.errcode is None else int(exc.errcode)
                if code in TOKEN_REFUSED and not last:
                    await self.tokens.invalidate(token)
                    continue
                status = exc.response.status_code if exc.response is not None else None
                raise classify(what, code, str(exc.errmsg or ""), status) from None
            except requests.RequestException as exc:
                raise RetryableError(f"WeChat {what}: {type(exc).__name__}") from None
        raise AssertionError("unreachable")

    def _run(self, token: str, request: Callable[[WeChatClient], T]) -> T:
        self.calls += 1
        _Client._per_thread.token = token
        try:
            return request(self._client)
        finally:
            _Client._per_thread.token = None

    async def _fetch_token(self) -> tuple[str, int]:
        return await asyncio.to_thread(self._fetch_token_now)

    def _fetch_token_now(self) -> tuple[str, int]:
        self.calls += 1
        params = {"grant_type": "client_credential", "appid": self.appid, "secret": self._secret}
        try:
            res = requests.get(f"{self.api_base}/cgi-bin/token", params=params,
                               timeout=self.timeout)  # fmt: skip
        except requests.RequestException as exc:
            raise RetryableError(f"WeChat token: {type(exc).__name__}") from None
        if res.status_code != 200:
            raise classify("token", None, "", res.status_code)
        try:
            result = res.json()
        except ValueError:
            raise RetryableError("WeChat token: the answer is not JSON") from None
        if result.get("errcode"):
            raise classify("token", int(result["errcode"]), str(result.get("errmsg", "")))
        if not isinstance(result.get("access_token"), str):
            raise RetryableError("WeChat token: the answer has no access_token")
        return result["access_token"], int(result.get("expires_in") or 7200)
