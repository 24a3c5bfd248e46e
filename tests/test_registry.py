"""The channel registry is the one list of channels: settings sections, environment variables,
start-up checks and the channels a worker builds all come from the entries channels declare."""

from __future__ import annotations

from typing import Any

import pytest

import channels
from channels.base import ChannelContext, Publication, Receipt
from channels.registry import Capability, ChannelSpec, check_names, make_registry
from dispatcher.dispatch.channels import build_channel, build_channels, channel_settings
from dispatcher.errors import SettingsError
from dispatcher.settings import load_settings
from tests.helpers import CATALOGUE


class Plain:
    """A channel that does nothing more than publish and withdraw."""

    def __init__(self, ctx: ChannelContext) -> None:
        self.name = ctx.name
        self.settings = ctx.settings
        self.steps = ctx.steps

    async def publish(self, pub: Publication) -> Receipt:
        return Receipt(external_id=pub.key)

    async def withdraw(self, pub: Publication, receipt: Receipt) -> Receipt:
        return Receipt(external_id=pub.key)


SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes, made up


def test_the_first_platform_is_registered_and_enabled_by_default() -> None:
    assert channels.FIRST_PLATFORM in channels.REGISTRY
    settings = load_settings(env={})
    assert settings.channels.enabled == ("website", "feeds")  # the channels needing no account
    for name in settings.channels.enabled:
        spec = channels.REGISTRY[name]
        assert spec.factory is not None and not spec.required and not spec.named


def test_names_come_from_the_registry() -> None:
    registry = channels.REGISTRY
    assert check_names(registry, ["website", "wechat", "media:xin_hua"]) is None
    assert "use website, feeds, wechat[:NAME], media:NAME" in str(check_names(registry, ["pigeon"]))
    assert "unknown channel 'media'" in str(check_names(registry, ["media"]))
    assert "unknown channel 'website:a'" in str(check_names(registry, ["website:a"]))
    assert check_names(registry, ["wechat:zrzy"]) is None  # an account by name, or the plain one
    assert "bad media channel name" in str(check_names(registry, ["media:Xinhua"]))
    with pytest.raises(ValueError, match="registered twice"):
        make_registry(ChannelSpec("x", None), ChannelSpec("x", None))


def test_each_section_is_checked_by_its_channels_model(tmp_path: Any) -> None:
    config = tmp_path / "gongkai.toml"
    config.write_text(
        '[channels.wechat]\nappid = 3\n[channels.media.x]\nurl = "u"\nbogus = 1\n'
        "[channels.website]\nfoo = 1\n[channels.fax]\nnumber = 1\n",
        encoding="utf-8",
    )
    with pytest.raises(SettingsError) as info:
        load_settings(env={"GONGKAI_CONFIG": str(config)})
    message = str(info.value)
    for problem in (
        "channels.wechat.appid: Input should be a valid string",
        "channels.media.x.bogus: Extra inputs are not permitted",
        "channels.website.foo: Extra inputs are not permitted",
        "channels.fax: Extra inputs are not permitted",
    ):
        assert problem in message


def test_environment_variables_follow_each_channels_keys() -> None:
    env = {
        "GONGKAI_CHANNELS": "website,wechat,media:xin_hua",
        "GONGKAI_WECHAT_APPID": "wx123",
        "GONGKAI_WECHAT_API_BASE": "http://127.0.0.1:9/",
        "GONGKAI_MEDIA_XIN_HUA_URL": "http://127.0.0.1:9/hook",
        "GONGKAI_MEDIA_XIN_HUA_SECRET": SECRET,
        "GONGKAI_WECHAT_COLOUR": "red",  # not a key of the section: ignored
        "GONGKAI_WECHAT_ZI_RAN_APPID": "wx456",  # the account `wechat:zi_ran`
        "GONGKAI_WECHAT_ZI_RAN_AGENCIES": "12990100MB0000004D, 11990100MB0000007X",
    }
    settings = load_settings(env=env)
    wechat = settings.channels.section("wechat").model_dump()
    assert (wechat["appid"], wechat["secret"], wechat["api_base"]) == (
        "wx123",
        "",
        "http://127.0.0.1:9",
    )
    assert "accounts" not in wechat  # the plain account's own keys only
    named = settings.channels.section("wechat:zi_ran").model_dump()
    assert (named["appid"], named["api_base"]) == ("wx456", "https://api.weixin.qq.com")
    assert named["agencies"] == ("12990100MB0000004D", "11990100MB0000007X")
    outlet = settings.channels.section("media:xin_hua")
    assert (outlet.url, outlet.secret.get_secret_value()) == ("http://127.0.0.1:9/hook", SECRET)
    other = settings.channels.section("media:other")
    assert (other.url, other.secret.get_secret_value()) == ("", "")
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    with pytest.raises(SettingsError) as info:
        settings.check_channels()  # wechat has no secret: only the missing key is named
    assert str(info.value) == (
        "channel 'wechat' is enabled but [channels.wechat] secret is not set "
        "(GONGKAI_WECHAT_SECRET)"
    )


def test_a_declared_channel_without_an_implementation_is_a_start_up_error() -> None:
    settings = load_settings(env={"GONGKAI_CHANNELS": "website,feeds"})
    declared = make_registry(ChannelSpec("website", Plain), ChannelSpec("feeds", None))
    with pytest.raises(SettingsError, match="'feeds' is enabled but this version cannot send"):
        build_channels(settings, CATALOGUE, declared, session=None)


def test_a_channel_gets_the_site_keys_and_its_section_and_the_steps_it_declares() -> None:
    settings = load_settings(env={"GONGKAI_BASE_URL": "https://gk.example.gov.cn"})
    section = channel_settings(settings, CATALOGUE, "website")
    assert section["base_url"] == "https://gk.example.gov.cn"
    assert [d["key"] for d in section["outline"]] == list(CATALOGUE.domains)
    steps = object()
    plain = make_registry(ChannelSpec("website", Plain), ChannelSpec("feeds", Plain))
    built = build_channel(settings, CATALOGUE, plain, "website", None, steps)  # type: ignore[arg-type]
    assert isinstance(built.channel, Plain) and built.channel.steps is None  # not declared
    stepped = make_registry(
        ChannelSpec("website", Plain, capabilities=frozenset({Capability.STEPS}))
    )
    built = build_channel(settings, CATALOGUE, stepped, "website", None, steps)  # type: ignore[arg-type]
    assert isinstance(built.channel, Plain) and built.channel.steps is steps


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ChannelSpec("website", Plain, capabilities=frozenset({Capability.CONFIRM})),
         "declares confirm but does not implement it"),
        (ChannelSpec("website", Plain, capabilities=frozenset({Capability.REBUILD})),
         "declares rebuild but does not implement it"),
        (ChannelSpec("website", lambda ctx: (_ for _ in ()).throw(ValueError("no templates"))),
         "channel 'website' cannot start: no templates"),
    ],
)  # fmt: skip
def test_a_channel_that_does_not_keep_its_declaration_stops_the_start(
    spec: ChannelSpec, message: str
) -> None:
    settings = load_settings(env={})
    with pytest.raises(SettingsError, match=message):
        build_channel(settings, CATALOGUE, make_registry(spec), "website", None)


def test_concurrency_comes_from_the_entry_unless_configured() -> None:
    settings = load_settings(env={})
    real = build_channels(settings, CATALOGUE, channels.REGISTRY, session=None)
    assert {name: e.concurrency for name, e in real.items()} == {"website": 32, "feeds": 32}
    plain = make_registry(ChannelSpec("website", Plain), ChannelSpec("feeds", Plain))
    built = build_channels(settings, CATALOGUE, plain, session=None)
    assert built["website"].concurrency == settings.dispatch.channel_concurrency == 8
    tuned = settings.model_copy(
        update={"dispatch": settings.dispatch.model_copy(update={"concurrency": {"feeds": 2}})}
    )
    assert build_channels(tuned, CATALOGUE, channels.REGISTRY, None)["feeds"].concurrency == 2


def test_a_plain_and_named_accounts_read_from_the_file(tmp_path: Any) -> None:
    config = tmp_path / "gongkai.toml"
    config.write_text(
        '[channels]\nenabled = ["website", "wechat", "wechat:zrzy"]\n'
        '[channels.wechat]\nappid = "wx1"\nsecret = "s1"\n'
        '[channels.wechat.zrzy]\nappid = "wx2"\nsecret = "s2"\nagencies = ["11990100MB0000002B"]\n'
        '[channels.wechat.bad]\nappid = "wx3"\ncolour = "red"\n',
        encoding="utf-8",
    )
    with pytest.raises(SettingsError, match=r"channels.wechat.accounts.bad.colour: Extra inputs"):
        load_settings(env={"GONGKAI_CONFIG": str(config)})
    config.write_text(config.read_text("utf-8").split("[channels.wechat.bad]")[0], "utf-8")
    settings = load_settings(
        env={"GONGKAI_CONFIG": str(config), "GONGKAI_WECHAT_ZRZY_SECRET": "s9"}
    )
    settings.check_channels()
    assert settings.channels.section("wechat").model_dump()["appid"] == "wx1"
    zrzy = settings.channels.section("wechat:zrzy").model_dump()
    assert (zrzy["appid"], zrzy["secret"], zrzy["agencies"]) == (
        "wx2",
        "s9",
        ("11990100MB0000002B",),
    )
