"""Settings: embedded defaults, file then environment, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.settings import SettingsError, load_settings


def test_defaults_need_no_file_and_no_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.database_url == "sqlite+aiosqlite:///var/gongkai.db"
    assert settings.channels.enabled == ("website", "feeds")
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    settings.check_channels()


def test_environment_wins_over_file(tmp_path: Path) -> None:
    config = tmp_path / "gongkai.toml"
    config.write_text(
        '[server]\nport = 9000\nhost = "0.0.0.0"\n'
        '[storage]\ndatabase_url = "postgresql://db/gongkai"\n'
        '[channels]\nenabled = ["website", "feeds", "media:xinhua"]\n'
        '[channels.media.xinhua]\nurl = "http://127.0.0.1:9/hook"\n',
        encoding="utf-8",
    )
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # made up
    env = {"GONGKAI_CONFIG": str(config), "GONGKAI_PORT": "9100",
           "GONGKAI_MEDIA_XINHUA_SECRET": secret}  # fmt: skip
    settings = load_settings(env=env)
    assert settings.server.port == 9100
    assert settings.server.host == "0.0.0.0"  # noqa: S104 - read from the file
    assert settings.database_url == "postgresql://db/gongkai"
    assert settings.channels.media["xinhua"].url == "http://127.0.0.1:9/hook"
    assert settings.channels.media["xinhua"].secret.get_secret_value() == secret
    assert secret not in repr(settings)
    settings.check_channels()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GONGKAI_PORT": "eighty"}, "server.port"),
        ({"GONGKAI_CHANNELS": "website,pigeon"}, "unknown channel 'pigeon'"),
        ({"GONGKAI_CHANNELS": "feeds"}, "first platform"),
        ({"GONGKAI_CHANNELS": "website,website"}, "listed twice"),
        ({"GONGKAI_CHANNELS": "website,media"}, "unknown channel 'media'"),
    ],
)
def test_bad_settings_are_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env=env)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GONGKAI_CHANNELS": "website,wechat"}, "GONGKAI_WECHAT_APPID"),
        ({"GONGKAI_CHANNELS": "website,media:xinhua",
          "GONGKAI_MEDIA_XINHUA_URL": "http://127.0.0.1:9"}, "GONGKAI_MEDIA_XINHUA_SECRET"),
    ],
)  # fmt: skip
def test_enabled_but_unconfigured_channel_fails_at_start(env: dict[str, str], message: str) -> None:
    settings = load_settings(env=env)
    with pytest.raises(SettingsError, match=message):
        settings.check_channels()


def test_bad_config_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\nport = 1", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(env={"GONGKAI_CONFIG": str(broken)})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[server]\nprot = 1\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"server\.prot"):
        load_settings(env={"GONGKAI_CONFIG": str(unknown)})
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(env={"GONGKAI_CONFIG": str(tmp_path / "missing.toml")})
