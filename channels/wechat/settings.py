"""One official account's settings: `[channels.wechat]`, and `[channels.wechat.NAME]` for more.

The environment sets them too: `GONGKAI_WECHAT_APPID`, `GONGKAI_WECHAT_ZRZY_SECRET`, …
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

DEFAULT_API_BASE = "https://api.weixin.qq.com"
# 统一社会信用代码: the agencies whose items an account carries
_CREDIT_CODE = r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$"


class WechatSettings(BaseModel):
    """One official account (公众号)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    appid: str = ""
    secret: str = Field(default="", repr=False)
    # The API's scheme and host; the token is fetched from it too (`{api_base}/cgi-bin/token`).
    api_base: str = DEFAULT_API_BASE
    # Items of these agencies only (credit codes); empty: every item that names the channel.
    agencies: tuple[Annotated[str, StringConstraints(pattern=_CREDIT_CODE)], ...] = ()
    cover: str = ""  # a JPEG of at most 64 KB; "" = the built-in cover
    author: str = Field(default="", max_length=16)  # "" = the item's agency, shortened
    timeout: float = Field(default=10.0, gt=0, le=120)  # seconds, per API call
    # Seconds after a submit before the first look at the publish job; then twice as long
    # each time, up to 5 minutes (the event push, when configured, confirms sooner).
    first_look: float = Field(default=3.0, ge=0.05, le=600)
    # The token the account's server configuration (服务器配置) signs its event pushes with.
    callback_token: str = Field(default="", repr=False)
    # "digest": once a day at `digest_at` (Beijing time), the items published since the last
    # digest go to every follower as one mass message (群发) of up to 8 articles.
    notify: Literal["none", "digest"] = "none"
    digest_at: str = "20:00"

    @field_validator("agencies", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """From the environment: `GONGKAI_WECHAT_ZRZY_AGENCIES=code1,code2`."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("api_base")
    @classmethod
    def _http_base(cls, value: str) -> str:
        if not re.match(r"^https?://[^/?#\s]+$", value.rstrip("/")):
            raise ValueError("must be an http(s) scheme and host, e.g. https://api.weixin.qq.com")
        return value.rstrip("/")

    @field_validator("digest_at")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("must be a Beijing time of day as HH:MM, e.g. 20:00")
        return value
