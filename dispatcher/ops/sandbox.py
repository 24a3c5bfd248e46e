"""`serve --sandbox` and `demo`: local stand-ins of WeChat and of a news outlet, enabled.

Two stand-ins run in this process, each on a free port of the serving host:

- the WeChat API (`channels/wechat/sandbox.py`), with the account `wechat:sandbox` enabled on
  it, so every item whose channels include WeChat is published there and can be watched on its
  page (`/sandbox/`);
- a news outlet (`channels/media/sandbox.py`) named `sandbox`, with the channel `media:sandbox`
  enabled on it (a new signing secret each run, no rate limit), so every item whose channels
  include the news media is sent there, signed, and can be watched on its page
  (`/outlets/sandbox/`).

They keep their state in memory: a restart starts empty stand-ins. They are for rehearsals
without real accounts, so they refuse to run beside one: a rehearsal must not publish to real
followers or outlets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from channels.media import SPEC as MEDIA
from channels.media.sandbox import Outlet, OutletSandbox, new_secret, running_outlets
from channels.registry import split_name
from channels.wechat import SPEC as WECHAT
from channels.wechat.sandbox import SANDBOX_APPID, SANDBOX_SECRET, running_sandbox
from dispatcher.errors import SettingsError
from dispatcher.settings import Settings

SANDBOX = "sandbox"  # the name of the account and of the outlet
ACCOUNT = f"{WECHAT.kind}:{SANDBOX}"
OUTLET = f"{MEDIA.kind}:{SANDBOX}"


def _refuse_real(settings: Settings, kind: str, what: str) -> None:
    real = [name for name in settings.channels.enabled if split_name(name)[0] == kind]
    if real:
        raise SettingsError(
            f"--sandbox rehearses without a real {what}, but {', '.join(real)} "
            "is enabled: disable it (GONGKAI_CHANNELS) to rehearse"
        )


def with_sandbox_account(settings: Settings, api_base: str) -> Settings:
    """`settings` with the account `wechat:sandbox` on the stand-in at `api_base` enabled."""
    _refuse_real(settings, WECHAT.kind, "WeChat account")
    raw = settings.model_dump()
    raw["channels"]["enabled"] = [*settings.channels.enabled, ACCOUNT]
    section = raw["channels"][WECHAT.kind]
    section.setdefault("accounts", {})[SANDBOX] = {
        "appid": SANDBOX_APPID,
        "secret": SANDBOX_SECRET,
        "api_base": api_base,
        "first_look": 1.0,
        # `GONGKAI_WECHAT_NOTIFY=digest` (and `_DIGEST_AT`) rehearse the digest on it too.
        **{key: section[key] for key in ("notify", "digest_at") if key in section},
    }
    return Settings.model_validate(raw)


def with_sandbox_outlet(settings: Settings, url: str, secret: str) -> Settings:
    """`settings` with the channel `media:sandbox` enabled: events to `url`, signed with
    `secret`, at no limited rate."""
    _refuse_real(settings, MEDIA.kind, "news outlet")
    raw = settings.model_dump()
    raw["channels"]["enabled"] = [*settings.channels.enabled, OUTLET]
    raw["channels"][MEDIA.kind][SANDBOX] = {"url": url, "secret": secret, "rate": 0.0}
    return Settings.model_validate(raw)


@dataclass(frozen=True)
class Rehearsal:
    """The settings with the stand-ins' channels enabled, and the stand-ins' pages."""

    settings: Settings
    wechat_page: str  # the WeChat stand-in's `/sandbox/`
    outlet_page: str  # the outlet's `/outlets/sandbox/`
    outlet: Outlet  # what the outlet received

    def banner(self, *, names: bool = True) -> str:
        """A line per stand-in run: its page, and with `names` the channel it is."""
        lines = []
        if self.wechat_page:
            named = f" (account {ACCOUNT})" if names else ""
            lines.append(f"WeChat sandbox{named}: {self.wechat_page}\n")
        if self.outlet_page:
            named = f" (outlet {OUTLET})" if names else ""
            lines.append(f"News media sandbox{named}: {self.outlet_page}\n")
        return "".join(lines)


@asynccontextmanager
async def sandboxes(settings: Settings, *, wechat: bool = True, media: bool = True
                    ) -> AsyncIterator[Rehearsal]:  # fmt: skip
    """Run the stand-ins (each unless told not to) and yield the rehearsal on them.

    SettingsError before anything starts if a real channel of a kind it stands in for is enabled.
    A page of a stand-in not run is "".
    """
    if wechat:
        _refuse_real(settings, WECHAT.kind, "WeChat account")
    if media:
        _refuse_real(settings, MEDIA.kind, "news outlet")
    host = settings.server.host
    outlet = Outlet(SANDBOX, [new_secret()])
    async with AsyncExitStack() as stack:
        wechat_page = outlet_page = ""
        if wechat:
            running = await stack.enter_async_context(running_sandbox(host=host))
            settings = with_sandbox_account(settings, running.base_url)
            wechat_page = f"{running.base_url}/sandbox/"
        if media:
            outlets = await stack.enter_async_context(
                running_outlets(OutletSandbox([outlet]), host=host)
            )
            settings = with_sandbox_outlet(settings, outlets.url_for(SANDBOX), outlet.secrets[0])
            outlet_page = f"{outlets.base_url}/outlets/{SANDBOX}/"
        yield Rehearsal(settings, wechat_page, outlet_page, outlet)


@asynccontextmanager
async def wechat_sandbox(settings: Settings) -> AsyncIterator[tuple[Settings, str]]:
    """Run the WeChat stand-in only; yield the settings with its account, and its page's URL."""
    async with sandboxes(settings, media=False) as rehearsal:
        yield rehearsal.settings, rehearsal.wechat_page
