"""`serve --sandbox` and `demo` with the outlet: `media:sandbox` enabled on a running outlet, the
real channel publishing to it, and no rehearsal beside a real outlet."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from channels.base import ChannelContext, RetryableError
from channels.media import media_factory
from channels.media.channel import MediaChannel
from channels.media.sandbox import Outlet, RunningOutlets, new_secret
from channels.media.settings import MediaSettings
from dispatcher.dispatch.channels import channel_settings
from dispatcher.errors import SettingsError
from dispatcher.ops.sandbox import (
    ACCOUNT,
    OUTLET,
    sandboxes,
    wechat_sandbox,
    with_sandbox_account,
    with_sandbox_outlet,
)
from dispatcher.settings import Settings, load_settings
from tests.channels.conftest import BASE_URL, MakePub
from tests.helpers import CATALOGUE, wait_until


def _settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings(env={"GONGKAI_DATA_DIR": str(tmp_path / "var"), **env})


def _channel(settings: Settings, session: aiohttp.ClientSession, tmp_path: Path
             ) -> MediaChannel:  # fmt: skip
    """The channel `media:sandbox` as a worker builds it from `settings`."""
    own = channel_settings(settings, CATALOGUE, OUTLET)
    return media_factory(ChannelContext(OUTLET, own, session, str(tmp_path)))


def test_the_outlet_is_enabled_with_its_url_and_secret(tmp_path: Path) -> None:
    secret = new_secret()
    url = "http://127.0.0.1:9/outlets/sandbox/events"
    settings = with_sandbox_outlet(_settings(tmp_path), url, secret)
    assert OUTLET == "media:sandbox" and OUTLET in settings.channels.enabled
    section = settings.channels.section(OUTLET)
    assert isinstance(section, MediaSettings)
    assert (section.url, section.secret.get_secret_value(), section.rate) == (url, secret, 0)
    settings.check_channels()
    both = with_sandbox_account(settings, "http://127.0.0.1:9")
    assert {ACCOUNT, OUTLET} <= set(both.channels.enabled)


def test_no_rehearsal_beside_a_real_outlet(tmp_path: Path) -> None:
    real = _settings(tmp_path, GONGKAI_CHANNELS="website,feeds,media:xinhua",
                     GONGKAI_MEDIA_XINHUA_URL="https://news.example.cn/hooks",
                     GONGKAI_MEDIA_XINHUA_SECRET=new_secret())  # fmt: skip
    with pytest.raises(SettingsError, match=r"real news outlet, but media:xinhua is enabled"):
        with_sandbox_outlet(real, "http://127.0.0.1:9/outlets/sandbox/events", new_secret())
    # The WeChat account alone may still rehearse beside it.
    assert ACCOUNT in with_sandbox_account(real, "http://127.0.0.1:9").channels.enabled


async def test_sandboxes_refuse_before_starting_anything(tmp_path: Path) -> None:
    real = _settings(tmp_path, GONGKAI_CHANNELS="website,feeds,media:xinhua",
                     GONGKAI_MEDIA_XINHUA_URL="https://news.example.cn/hooks",
                     GONGKAI_MEDIA_XINHUA_SECRET=new_secret())  # fmt: skip
    with pytest.raises(SettingsError, match="media:xinhua"):
        async with sandboxes(real):
            pytest.fail("started beside a real outlet")
    async with sandboxes(real, media=False) as rehearsal:  # as `demo` does
        assert rehearsal.outlet_page == "" and OUTLET not in rehearsal.settings.channels.enabled
        assert rehearsal.banner(names=False).startswith("WeChat sandbox: http://")


async def test_a_rehearsal_publishes_to_the_running_outlet(
    tmp_path: Path, make_pub: MakePub
) -> None:
    async with sandboxes(_settings(tmp_path)) as rehearsal, aiohttp.ClientSession() as http:
        settings = rehearsal.settings
        assert {ACCOUNT, OUTLET} <= set(settings.channels.enabled)
        assert rehearsal.outlet_page.endswith("/outlets/sandbox/")
        assert f"News media sandbox (outlet media:sandbox): {rehearsal.outlet_page}\n" in (
            rehearsal.banner()
        )
        channel = _channel(settings, http, tmp_path)
        receipt = await channel.publish(make_pub(key="7:1:media:sandbox"))
        assert receipt.external_id == "art-1" and receipt.url == (
            rehearsal.outlet_page + "articles/1"
        )
        await channel.withdraw(make_pub(key="7:1:withdraw:media:sandbox", action="withdraw",
                                        change_note="信息有误"), receipt)  # fmt: skip
        outlet = rehearsal.outlet
        assert outlet.types(7) == ["item.published", "item.withdrawn"]
        assert outlet.received[1].data["withdrawal_reason"] == "信息有误"
        async with http.get(rehearsal.outlet_page) as page:
            assert page.status == 200 and "撤回" in await page.text()
        async with http.get(rehearsal.wechat_page) as page:
            assert page.status == 200 and "微信公众号沙箱" in await page.text()


async def test_wechat_sandbox_still_runs_the_wechat_stand_in_alone(tmp_path: Path) -> None:
    async with wechat_sandbox(_settings(tmp_path)) as (settings, page):
        assert page.endswith("/sandbox/") and ACCOUNT in settings.channels.enabled
        assert OUTLET not in settings.channels.enabled


async def test_the_channel_retries_a_slow_outlet_and_gets_the_first_answer(
    running: RunningOutlets,
    outlet: Outlet,
    secret: str,
    make_pub: MakePub,
    tmp_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    own = {"base_url": BASE_URL, "url": running.url_for(outlet.name), "secret": secret,
           "timeout": 0.2, "rate": 0}  # fmt: skip
    channel = media_factory(ChannelContext("media:xinhua", own, http, str(tmp_path)))
    outlet.script = [1.0, 503]
    pub = make_pub(key="7:1:media:xinhua")
    with pytest.raises(RetryableError, match="no answer within"):
        await channel.publish(pub)
    await wait_until(lambda: len(outlet.received) == 1, 10)  # received, though the answer was late
    with pytest.raises(RetryableError, match="HTTP 503") as refused:
        await channel.publish(pub)
    assert refused.value.retry_after == 1.0
    receipt = await channel.publish(pub)
    assert receipt.external_id == "art-1"  # the slow attempt's article, answered again
    assert (len(outlet.received), outlet.duplicates, outlet.attempts) == (1, 1, 3)
