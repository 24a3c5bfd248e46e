"""Channels whose settings this version knows but cannot send to yet: news media. They are
declared so that a configuration naming them is checked like any other (`[channels.media.NAME]`,
their environment variables) and enabling one is a clear start-up error, not a silent skip.
Each moves to a module of its own when it is built.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from channels.registry import ChannelSpec


class MediaSettings(BaseModel):
    """One news outlet's webhook."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = ""
    secret: str = Field(default="", repr=False)


MEDIA = ChannelSpec("media", None, MediaSettings, required=("url", "secret"), named=True)
