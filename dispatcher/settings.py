"""One typed settings object, read once: `gongkai.toml` (or `$GONGKAI_CONFIG`), then the env.

Environment variables win over the file. With neither, everything runs on embedded defaults under
`./var/`. Only channels that need no account (`website`, `feeds`) are enabled by default; a remote
channel that is enabled but not configured is a `SettingsError` at start-up, never a silent skip.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

import channels
from channels.registry import ChannelSpec, check_names, split_name
from dispatcher.errors import SettingsError

DEFAULT_CONFIG_FILE = "gongkai.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # /metrics for a scraper holding this bearer token, or from these networks; neither set:
    # open (a machine of one's own). GONGKAI_METRICS_NETWORKS=127.0.0.1/32,10.0.0.0/8
    metrics_token: str = Field(default="", repr=False)
    metrics_networks: tuple[str, ...] = ()
    # Reverse proxies (nginx in front) whose X-Forwarded-For names the client: a request from
    # one of these networks is judged by the last address it forwarded that is not itself a
    # proxy (for /metrics' networks). None by default: the peer is the client.
    # GONGKAI_TRUSTED_PROXIES=127.0.0.1/32,172.16.0.0/12
    trusted_proxies: tuple[str, ...] = ()

    @field_validator("metrics_networks", "trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        parts = value.split(",") if isinstance(value, str) else value
        if not isinstance(parts, (list, tuple)):
            return value
        found = []
        for part in (str(p).strip() for p in parts):
            if part:
                try:
                    found.append(str(ipaddress.ip_network(part, strict=False)))
                except ValueError:
                    raise ValueError(f"{part!r} is not a network such as 10.0.0.0/8") from None
        return tuple(found)


class StorageSettings(_Section):
    database_url: str = ""
    redis_url: str = ""
    data_dir: str = "var"


class SiteSettings(_Section):
    base_url: str = "http://127.0.0.1:8080"
    title: str = "公共资源配置领域政府信息公开"
    hub_url: str = ""  # a WebSub hub the feeds link to and ping; "" = none
    # Hosts body images may come from besides the site's own (others are left out at intake:
    # a remote image is a reader's tracking pixel): `host`, or `host:port` for a port that is
    # not the scheme's own (a host alone allows 80 and 443 only). GONGKAI_IMAGE_HOSTS=a.gov.cn
    image_hosts: tuple[str, ...] = ()
    # What every page's footer carries under 《政府网站发展指引》(国办发〔2017〕47号): the
    # sponsor (主办单位) and operator (承办单位), the website identifier code (网站标识码), the
    # ICP and public-security filing numbers (linked to their registries), contact address and
    # phone, and the 我为政府网站找错 link. Empty: not shown.
    sponsor: str = Field(default="", max_length=100)
    operator: str = Field(default="", max_length=100)
    site_code: str = Field(default="", pattern=r"^([0-9A-Za-z]{10})?$")
    icp: str = Field(default="", max_length=60)  # e.g. 京ICP备05070218号
    police_record: str = Field(default="", max_length=60)  # e.g. 京公网安备 11010502030143号
    address: str = Field(default="", max_length=200)
    phone: str = Field(default="", max_length=60)
    error_report_url: str = Field(default="", max_length=500)  # https://…; {site_code} is filled

    @field_validator("error_report_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("image_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().lower() for part in value.split(",") if part.strip())
        return value


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


class _ChannelSettings(BaseModel):
    """`[channels]`: which channels are enabled, and one section per channel kind.

    The sections are those the channel registry declares, each validated by the channel's own
    settings model: `[channels.KIND]`, or `[channels.KIND.NAME]` for named channels
    (`media:xinhua`). A section not given has the model's defaults.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # By default, the channels that need no account: the website and its feeds.
    enabled: tuple[str, ...] = tuple(
        kind
        for kind, spec in channels.REGISTRY.items()
        if spec.factory is not None and not spec.required and not spec.named
    )

    @field_validator("enabled")
    @classmethod
    def _known_channels(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        problem = check_names(channels.REGISTRY, names)
        if problem:
            raise ValueError(problem)
        if len(set(names)) != len(names):
            raise ValueError("a channel is listed twice")
        if channels.FIRST_PLATFORM not in names:
            raise ValueError(
                f"the {channels.FIRST_PLATFORM} channel (the first platform) cannot be disabled"
            )
        return names

    def section(self, name: str) -> BaseModel:
        """The settings of the channel `name` (`wechat`, `wechat:zrzy`, `media:xinhua`)."""
        kind, sub = split_name(name)
        spec = channels.REGISTRY[kind]
        given: Any = getattr(self, kind)
        if spec.plain_too and not sub:  # the section's own keys, without its named tables
            return spec.settings.model_validate(given.model_dump(exclude={_NAMED}))
        if spec.named:
            given = (given.accounts if spec.plain_too else given).get(sub)
        return given if isinstance(given, BaseModel) else spec.settings()


_NAMED = "accounts"  # where a plain-too section keeps its named tables


def _section_field(spec: ChannelSpec) -> Any:
    if spec.plain_too:
        model = _plain_and_named(spec.settings)
        return (model, Field(default_factory=model))
    if spec.named:
        return (dict[str, spec.settings], Field(default_factory=dict))  # type: ignore[name-defined]
    return (spec.settings, Field(default_factory=spec.settings))


def _plain_and_named(settings: type[BaseModel]) -> Any:
    """`[channels.wechat]` with its own keys and `[channels.wechat.NAME]` tables: the tables are
    gathered under `accounts`, each validated by the same model."""

    fields = {*settings.model_fields, _NAMED}

    def gather(raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        own = {k: v for k, v in raw.items() if k in fields or not isinstance(v, dict)}
        tables = {k: v for k, v in raw.items() if k not in own}
        return {**own, _NAMED: {**own.pop(_NAMED, {}), **tables}} if tables else own

    named: Any = create_model(  # type: ignore[call-overload]
        f"{settings.__name__}WithNamed",
        __base__=settings,
        __validators__={"gather": model_validator(mode="before")(gather)},
        **{_NAMED: (dict[str, settings], Field(default_factory=dict))},  # type: ignore[valid-type]
    )
    return named


if TYPE_CHECKING:
    ChannelSettings = _ChannelSettings
else:  # one field per registered channel kind, typed by the channel's settings model
    ChannelSettings = create_model(
        "ChannelSettings",
        __base__=_ChannelSettings,
        **{kind: _section_field(spec) for kind, spec in channels.REGISTRY.items()},
    )


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
            kind, sub = split_name(name)
            problem = channels.REGISTRY[kind].missing(self.channels.section(name), sub)
            if problem:
                raise SettingsError(problem)


# (section, key) for each plain environment variable
_ENV_KEYS: dict[str, tuple[str, str]] = {
    "GONGKAI_HOST": ("server", "host"),
    "GONGKAI_PORT": ("server", "port"),
    "GONGKAI_MAX_BODY_BYTES": ("server", "max_body_bytes"),
    "GONGKAI_METRICS_TOKEN": ("server", "metrics_token"),
    "GONGKAI_METRICS_NETWORKS": ("server", "metrics_networks"),
    "GONGKAI_TRUSTED_PROXIES": ("server", "trusted_proxies"),
    "DATABASE_URL": ("storage", "database_url"),
    "REDIS_URL": ("storage", "redis_url"),
    "GONGKAI_DATA_DIR": ("storage", "data_dir"),
    "GONGKAI_BASE_URL": ("site", "base_url"),
    "GONGKAI_SITE_TITLE": ("site", "title"),
    "GONGKAI_HUB_URL": ("site", "hub_url"),
    "GONGKAI_IMAGE_HOSTS": ("site", "image_hosts"),
    "GONGKAI_SITE_SPONSOR": ("site", "sponsor"),
    "GONGKAI_SITE_OPERATOR": ("site", "operator"),
    "GONGKAI_SITE_CODE": ("site", "site_code"),
    "GONGKAI_SITE_ICP": ("site", "icp"),
    "GONGKAI_SITE_POLICE_RECORD": ("site", "police_record"),
    "GONGKAI_SITE_ADDRESS": ("site", "address"),
    "GONGKAI_SITE_PHONE": ("site", "phone"),
    "GONGKAI_SITE_ERROR_REPORT_URL": ("site", "error_report_url"),
    "GONGKAI_CALENDAR_OVERRIDES": ("calendar", "overrides"),
    "GONGKAI_SWEEP_INTERVAL": ("dispatch", "sweep_interval"),
    "GONGKAI_MAX_ATTEMPTS": ("dispatch", "max_attempts"),
    "GONGKAI_RETRY_BASE": ("dispatch", "retry_base"),
    "GONGKAI_RETRY_CAP": ("dispatch", "retry_cap"),
    "GONGKAI_LEASE_SECONDS": ("dispatch", "lease_seconds"),
    "GONGKAI_WORKER_JOBS": ("dispatch", "worker_jobs"),
}


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for var, (section, key) in _ENV_KEYS.items():
        if var in env:
            raw.setdefault(section, {})[key] = env[var]
    sections = raw.setdefault("channels", {})
    if "GONGKAI_CHANNELS" in env:
        sections["enabled"] = [c.strip() for c in env["GONGKAI_CHANNELS"].split(",") if c.strip()]
    for spec in channels.REGISTRY.values():
        found = spec.read_env(env)
        if found:  # over the file's section; a named channel's tables one level down
            section = sections.setdefault(spec.kind, {})
            for key, value in found.items():
                named = isinstance(value, dict)
                section[key] = {**section.get(key, {}), **value} if named else value


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
