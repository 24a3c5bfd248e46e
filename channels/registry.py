"""What the core knows of each channel, declared by the channel: its registry entry.

A `ChannelSpec` carries a channel's factory, its settings model (the `[channels.KIND]` section,
or `[channels.KIND.NAME]` for a named channel such as `media:xinhua`), the keys that must be set
before it may be enabled, how many deliveries a worker runs on it at once unless configured
otherwise, and its capabilities. The core derives everything from these entries — which names
are valid, which environment variables set which key, what a missing key's message says — and
never names a channel itself, except the first platform (`channels.FIRST_PLATFORM`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from channels.base import ChannelFactory, InboundHandler

_SUB_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class Capability(StrEnum):
    """What a channel can do beyond `publish` and `withdraw`."""

    CONFIRM = "confirm"  # its receipts may pend; it implements `ConfirmingChannel.confirm`
    STEPS = "steps"  # publishing is several remote calls; it saves each one's id (`StepStore`)
    REBUILD = "rebuild"  # it can regenerate all it holds from a replay (`RebuildableChannel`)
    DIGEST = "digest"  # it sends its followers a daily digest (`DigestingChannel`)
    # It writes files on the machine its worker runs on (the site directory): its deliveries
    # go to a queue of their own, taken only by workers where those files are.
    LOCAL_FILES = "local_files"


class NoSettings(BaseModel):
    """A channel with no settings section of its own (an empty section is accepted)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ChannelSpec:
    """One registry entry. `factory` None: the channel's settings are known and checked, but
    this version cannot send to it yet (enabling it is a start-up error)."""

    kind: str
    factory: ChannelFactory | None
    settings: type[BaseModel] = NoSettings
    required: tuple[str, ...] = ()  # keys that must be non-empty when the channel is enabled
    named: bool = False  # one channel per configured name: "media:xinhua"
    # With `named`: the kind alone is a channel too, configured by the section's own keys
    # (`wechat`, and `wechat:zrzy` from `[channels.wechat.zrzy]`).
    plain_too: bool = False
    in_flight: int | None = None  # default deliveries in flight per worker; None: the core's
    capabilities: frozenset[Capability] = frozenset()
    # What the remote pushes to `/hooks/NAME` (WeChat's event push), if it pushes anything.
    inbound: InboundHandler | None = None

    @property
    def _env_prefix(self) -> str:
        return f"GONGKAI_{self.kind.upper()}_"

    def env_var(self, key: str, sub: str = "") -> str:
        """The environment variable that sets `key`: GONGKAI_WECHAT_APPID, GONGKAI_MEDIA_X_URL."""
        middle = f"{sub.upper()}_" if sub else ""
        return f"{self._env_prefix}{middle}{key.upper()}"

    def read_env(self, env: Mapping[str, str]) -> dict[str, Any]:
        """The section's keys set by `env_var` variables; for a named channel, by name."""
        keys = {key.upper(): key for key in self.settings.model_fields}
        # NAME_KEY: the name is what comes before one of the model's keys (names may hold "_")
        alternatives = "|".join(sorted(map(re.escape, keys), key=len, reverse=True))
        named = re.compile(rf"^([A-Z][A-Z0-9_]*)_({alternatives})$")
        found: dict[str, Any] = {}
        for var, value in env.items():
            rest = var.removeprefix(self._env_prefix)
            if rest == var or not keys:
                continue
            if rest in keys and (not self.named or self.plain_too):
                found[keys[rest]] = value
            elif self.named and (match := named.match(rest)):
                found.setdefault(match[1].lower(), {})[keys[match[2]]] = value
        return found

    def section_name(self, sub: str = "") -> str:
        """The settings section's name: `[channels.wechat]`, `[channels.media.xinhua]`."""
        return f"[channels.{self.kind}{'.' + sub if sub else ''}]"

    def missing(self, values: BaseModel, sub: str = "") -> str | None:
        """A message naming the required keys left empty, or None if every one is set."""
        empty = [key for key in self.required if not getattr(values, key, None)]
        if not empty:
            return None
        name = f"{self.kind}:{sub}" if sub else self.kind
        envs = ", ".join(self.env_var(key, sub) for key in empty)
        verb = "is" if len(empty) == 1 else "are"
        where = f"{self.section_name(sub)} {'/'.join(empty)}"
        return f"channel {name!r} is enabled but {where} {verb} not set ({envs})"

    def allows(self, sub: str) -> bool:
        """Is `kind:sub` (or the plain kind, for sub "") a channel name of this kind?"""
        return self.named if sub else (not self.named or self.plain_too)

    @property
    def usage(self) -> str:
        """How its channels are named: `website`, `media:NAME`, `wechat[:NAME]`."""
        if not self.named:
            return self.kind
        return f"{self.kind}[:NAME]" if self.plain_too else f"{self.kind}:NAME"

    def has(self, capability: Capability) -> bool:
        return capability in self.capabilities


Registry = Mapping[str, ChannelSpec]


def make_registry(*specs: ChannelSpec) -> dict[str, ChannelSpec]:
    """An explicit kind -> spec table; a kind listed twice is an error at import time."""
    registry: dict[str, ChannelSpec] = {}
    for spec in specs:
        if spec.kind in registry:
            raise ValueError(f"channel {spec.kind!r} registered twice")
        registry[spec.kind] = spec
    return registry


def split_name(name: str) -> tuple[str, str]:
    """`media:xinhua` -> (`media`, `xinhua`); `website` -> (`website`, ``)."""
    kind, _, sub = name.partition(":")
    return kind, sub


def check_names(registry: Registry, names: Iterable[str]) -> str | None:
    """A message for the first enabled name the registry does not know, else None."""
    for name in names:
        kind, sub = split_name(name)
        spec = registry.get(kind)
        if spec is None or not spec.allows(sub):
            usage = ", ".join(spec.usage for spec in registry.values())
            return f"unknown channel {name!r}: use {usage}"
        if sub and not _SUB_NAME.match(sub):
            return f"bad {kind} channel name {name!r}: lowercase letters, digits and _"
    return None


def spec_for(registry: Registry, name: str) -> ChannelSpec | None:
    """The entry for an enabled name (`media:xinhua` -> the `media` entry)."""
    return registry.get(split_name(name)[0])
