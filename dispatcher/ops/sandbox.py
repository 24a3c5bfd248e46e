"""`serve --sandbox` and `demo`: a local stand-in of the WeChat API and an account on it.

The stand-in (`channels/wechat/sandbox.py`) runs in this process on a free port of the serving
host; the account `wechat:sandbox` is enabled on it, so every item whose channels include WeChat
is published there and can be watched on its page (`/sandbox/`). It keeps its state in memory:
a restart starts an empty stand-in. It is for rehearsals without a real account, so it refuses
to run beside one: a rehearsal must not publish to real followers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from channels.registry import split_name
from channels.wechat import SPEC as WECHAT
from channels.wechat.sandbox import SANDBOX_APPID, SANDBOX_SECRET, running_sandbox
from dispatcher.errors import SettingsError
from dispatcher.settings import Settings

ACCOUNT = f"{WECHAT.kind}:sandbox"


def with_sandbox_account(settings: Settings, api_base: str) -> Settings:
    """`settings` with the account `wechat:sandbox` on the stand-in at `api_base` enabled."""
    enabled = settings.channels.enabled
    real = [name for name in enabled if split_name(name)[0] == WECHAT.kind]
    if real:
        raise SettingsError(
            f"--sandbox rehearses without a real WeChat account, but {', '.join(real)} "
            "is enabled: disable it (GONGKAI_CHANNELS) to rehearse"
        )
    raw = settings.model_dump()
    raw["channels"]["enabled"] = [*enabled, ACCOUNT]
    section = raw["channels"][WECHAT.kind]
    section.setdefault("accounts", {})["sandbox"] = {
        "appid": SANDBOX_APPID,
        "secret": SANDBOX_SECRET,
        "api_base": api_base,
        "first_look": 1.0,
        # `GONGKAI_WECHAT_NOTIFY=digest` (and `_DIGEST_AT`) rehearse the digest on it too.
        **{key: section[key] for key in ("notify", "digest_at") if key in section},
    }
    return Settings.model_validate(raw)


@asynccontextmanager
async def wechat_sandbox(settings: Settings) -> AsyncIterator[tuple[Settings, str]]:
    """Run the stand-in; yield the settings with its account, and its page's URL."""
    with_sandbox_account(settings, "http://127.0.0.1")  # refuse before starting anything
    async with running_sandbox(host=settings.server.host) as running:
        yield with_sandbox_account(settings, running.base_url), f"{running.base_url}/sandbox/"
