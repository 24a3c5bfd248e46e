"""WeChat official accounts (公众号): one channel per account, `wechat` or `wechat:NAME`.

`channel` publishes (images, cover, draft, submit, confirm) and withdraws; `article` adapts an
item to WeChat's limits; `api` wraps wechatpy; `tokens` shares each account's access token
across workers; `sandbox` is a local stand-in of the WeChat API for rehearsals and tests.
"""

from __future__ import annotations

from datetime import time
from pathlib import Path

from channels.base import ChannelContext
from channels.files import site_base_url
from channels.registry import Capability, ChannelSpec
from channels.wechat.api import WechatApi
from channels.wechat.channel import WechatChannel
from channels.wechat.events import receive
from channels.wechat.settings import WechatSettings

BUILT_IN_COVER = Path(__file__).with_name("cover.jpg")
THUMB_MAX = 65_536  # material/add_material?type=thumb: a JPEG of at most 64 KB


def read_cover(path: str) -> bytes:
    """The cover image's bytes; ValueError (a start-up error) unless a JPEG of at most 64 KB."""
    source = Path(path) if path else BUILT_IN_COVER
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ValueError(f"cover {source}: cannot read: {exc.strerror}") from None
    if not data.startswith(b"\xff\xd8\xff") or len(data) > THUMB_MAX:
        raise ValueError(f"cover {source}: must be a JPEG of at most 64 KB")
    return data


def wechat_factory(ctx: ChannelContext) -> WechatChannel:
    """The account `ctx.name` from its settings section."""
    own = {k: v for k, v in ctx.settings.items() if k in WechatSettings.model_fields}
    settings = WechatSettings.model_validate(own)
    api = WechatApi(settings.appid, settings.secret, settings.api_base, settings.timeout, ctx.redis)
    return WechatChannel(
        ctx.name,
        api,
        ctx.session,
        site_base_url(ctx.settings),
        read_cover(settings.cover),
        author=settings.author,
        agencies=settings.agencies,
        steps=ctx.steps,
        redis=ctx.redis,
        first_look=settings.first_look,
        digest_at=time.fromisoformat(settings.digest_at) if settings.notify == "digest" else None,
    )


SPEC = ChannelSpec(
    "wechat",
    wechat_factory,
    WechatSettings,
    required=("appid", "secret"),
    named=True,
    plain_too=True,
    in_flight=4,  # WeChat limits calls per minute; a few articles at a time is plenty
    capabilities=frozenset({Capability.CONFIRM, Capability.STEPS, Capability.DIGEST}),
    inbound=receive,
)
