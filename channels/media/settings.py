"""One news outlet's settings: `[channels.media.NAME]`, or `GONGKAI_MEDIA_NAME_URL`, `_SECRET` ….

The secret is the outlet's Standard Webhooks signing secret, `whsec_` and the base64 of 24 to 64
random bytes (`gongkai media secret` makes one). To rotate it, give the outlet the new one, set
`secret` to it and `previous_secret` to the old one until `previous_until`: meanwhile every
event is signed with both, so the outlet can switch whenever it likes.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
_REGION = r"^\d{2}(\d{2}){0,2}$"  # a province (2 digits), a city (4) or a county (6)


def new_secret() -> str:
    """A fresh signing secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    """The key a `whsec_` secret stands for; ValueError (never naming the secret) if it is not
    one of 24 to 64 bytes."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX} (a Standard Webhooks secret)")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"must be {SECRET_PREFIX} and base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("must stand for 24 to 64 random bytes")
    return key


class MediaSettings(BaseModel):
    """One news outlet's webhook."""

    # A validation error never carries what was given: it may be a secret.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    url: str = ""
    secret: SecretStr = SecretStr("")
    previous_secret: SecretStr = SecretStr("")  # still signing until `previous_until`
    previous_until: datetime | None = None
    timeout: float = Field(default=10.0, gt=0, le=120)  # seconds for the outlet's answer
    rate: float = Field(default=5.0, ge=0, le=1000)  # requests per second, all workers; 0: any
    # Only these domains (catalogue keys) and regions (2, 4 or 6 digits: a prefix of the item's
    # region code); empty: every item that names the channel.
    domains: tuple[str, ...] = ()
    regions: tuple[Annotated[str, StringConstraints(pattern=_REGION)], ...] = ()

    @field_validator("domains", "regions", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """From the environment: `GONGKAI_MEDIA_XINHUA_DOMAINS=land,mining`."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^/?#\s@]+(/[^\s#]*)?$", value):
            raise ValueError("must be an http(s) URL with no user name or fragment")
        return value

    @field_validator("secret", "previous_secret")
    @classmethod
    def _whsec(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value():
            secret_bytes(value.get_secret_value())
        return value

    @field_validator("previous_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry its UTC offset, e.g. 2026-12-31T00:00:00+08:00")
        return value
