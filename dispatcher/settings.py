"""One typed settings object, read once: `gongkai.toml` (or `$GONGKAI_CONFIG`), then the env.

Environment variables win over the file. With neither, everything runs on embedded defaults under
`./var/`. Only channels that need no account (`website`, `feeds`) are enabled by default; a remote
channel that is enabled but not configured is a `SettingsError` at start-up, never a silent skip.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_CONFIG_FILE = "gongkai.toml"
CHANNEL_KINDS = ("website", "feeds", "wechat", "media")
_MEDIA_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class SettingsError(ValueError):
    """The configuration cannot be used; the message says which key and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)


class StorageSettings(_Section):
    database_url: str = ""
    redis_url: str = ""
    data_dir: str = "var"


class SiteSettings(_Section):
    base_url: str = "http://127.0.0.1:8080"
    title: str = "公共资源配置领域政府信息公开"
    hub_url: str = ""  # a WebSub hub the feeds link to and ping; "" = none


class CalendarSettings(_Section):
    overrides: str = ""


class DispatchSettings(_Section):
    """How deliveries are retried and swept; see `dispatcher/dispatch/jobs.py`."""

    sweep_interval: int = Field(default=30, ge=1, le=3600)
    max_attempts: int = Field(default=12, ge=1, le=100)
    retry_base: float = Field(default=40.0, gt=0)  # 40 s doubling, capped: 12 tries ≈ 17 h
    retry_cap: float = Field(default=21600.0, gt=0)
    lease_seconds: int = Field(default=120, ge=2, le=3600)
    worker_jobs: int = Field(default=50, ge=1, le=1000)
    channel_concurrency: int = Field(default=8, ge=1, le=1000)
    concurrency: dict[str, int] = Field(default_factory=dict)  # per channel, e.g. wechat = 2

    @field_validator("sweep_interval")
    @classmethod
    def _cron_friendly(cls, seconds: int) -> int:
        if 60 % seconds and seconds % 60:
            raise ValueError("must divide 60 (1, 2, 3, 5, 10, 15, 20, 30) or be a multiple of 60")
        return seconds


class WechatSettings(_Section):
    appid: str = ""
    secret: str = Field(default="", repr=False)
    api_base: str = "https://api.weixin.qq.com"
    mode: str = "publish"


class MediaSettings(_Section):
    url: str = ""
    secret: str = Field(default="", repr=False)


class ChannelSettings(_Section):
    enabled: tuple[str, ...] = ("website", "feeds")
    wechat: WechatSettings = WechatSettings()
    media: dict[str, MediaSettings] = Field(default_factory=dict)

    @field_validator("enabled")
    @classmethod
    def _known_channels(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            kind, _, sub = name.partition(":")
            if kind not in CHANNEL_KINDS or (kind == "media") != bool(sub):
                raise ValueError(
                    f"unknown channel {name!r}: use website, feeds, wechat, media:NAME"
                )
            if sub and not _MEDIA_NAME.match(sub):
                raise ValueError(f"bad media channel name {name!r}")
        if len(set(names)) != len(names):
            raise ValueError("a channel is listed twice")
        if "website" not in names:
            raise ValueError("the website channel (the first platform) cannot be disabled")
        return names


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    site: SiteSettings = SiteSettings()
    calendar: CalendarSettings = CalendarSettings()
    channels: ChannelSettings = ChannelSettings()
    dispatch: DispatchSettings = DispatchSettings()

    @property
    def data_path(self) -> Path:
        return Path(self.storage.data_dir)

    @property
    def database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under the data directory."""
        if self.storage.database_url:
            return self.storage.database_url
        return f"sqlite+aiosqlite:///{self.data_path / 'gongkai.db'}"

    def check_channels(self) -> None:
        """Raise SettingsError for an enabled channel that lacks its account settings."""
        for name in self.channels.enabled:
            if name == "wechat":
                wechat = self.channels.wechat
                if not (wechat.appid and wechat.secret):
                    raise SettingsError(
                        "channel 'wechat' is enabled but [channels.wechat] appid/secret are not "
                        "set (GONGKAI_WECHAT_APPID, GONGKAI_WECHAT_SECRET)"
                    )
            elif name.startswith("media:"):
                sub = name.split(":", 1)[1]
                media = self.channels.media.get(sub)
                if media is None or not (media.url and media.secret):
                    env = f"GONGKAI_MEDIA_{sub.upper()}"
                    raise SettingsError(
                        f"channel {name!r} is enabled but [channels.media.{sub}] url/secret are "
                        f"not set ({env}_URL, {env}_SECRET)"
                    )


# (section, key) for each plain environment variable
_ENV_KEYS: dict[str, tuple[str, str]] = {
    "GONGKAI_HOST": ("server", "host"),
    "GONGKAI_PORT": ("server", "port"),
    "GONGKAI_MAX_BODY_BYTES": ("server", "max_body_bytes"),
    "DATABASE_URL": ("storage", "database_url"),
    "REDIS_URL": ("storage", "redis_url"),
    "GONGKAI_DATA_DIR": ("storage", "data_dir"),
    "GONGKAI_BASE_URL": ("site", "base_url"),
    "GONGKAI_SITE_TITLE": ("site", "title"),
    "GONGKAI_HUB_URL": ("site", "hub_url"),
    "GONGKAI_CALENDAR_OVERRIDES": ("calendar", "overrides"),
    "GONGKAI_SWEEP_INTERVAL": ("dispatch", "sweep_interval"),
    "GONGKAI_MAX_ATTEMPTS": ("dispatch", "max_attempts"),
    "GONGKAI_RETRY_BASE": ("dispatch", "retry_base"),
    "GONGKAI_LEASE_SECONDS": ("dispatch", "lease_seconds"),
    "GONGKAI_WORKER_JOBS": ("dispatch", "worker_jobs"),
}
_WECHAT_ENV = {"APPID": "appid", "SECRET": "secret", "API_BASE": "api_base", "MODE": "mode"}
_MEDIA_ENV = re.compile(r"^GONGKAI_MEDIA_([A-Z][A-Z0-9_]*)_(URL|SECRET)$")


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for var, (section, key) in _ENV_KEYS.items():
        if var in env:
            raw.setdefault(section, {})[key] = env[var]
    channels = raw.setdefault("channels", {})
    if "GONGKAI_CHANNELS" in env:
        channels["enabled"] = [c.strip() for c in env["GONGKAI_CHANNELS"].split(",") if c.strip()]
    for suffix, key in _WECHAT_ENV.items():
        if f"GONGKAI_WECHAT_{suffix}" in env:
            channels.setdefault("wechat", {})[key] = env[f"GONGKAI_WECHAT_{suffix}"]
    for var, value in env.items():
        match = _MEDIA_ENV.match(var)
        if match:
            outlet = channels.setdefault("media", {}).setdefault(match[1].lower(), {})
            outlet[match[2].lower()] = value


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror}") from exc


def load_settings(env: Mapping[str, str] | None = None, path: str | None = None) -> Settings:
    """Build the settings from the config file and the environment (which wins)."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    named = path or env.get("GONGKAI_CONFIG")
    if named:
        raw = _read_file(Path(named))
    elif Path(DEFAULT_CONFIG_FILE).is_file():
        raw = _read_file(Path(DEFAULT_CONFIG_FILE))
    _apply_env(raw, env)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
