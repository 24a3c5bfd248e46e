"""The channels a worker runs: built from their registry entries and the settings.

Everything here comes from the entry a channel declares (`channels/registry.py`): its settings
section, its capabilities, its default concurrency. No channel is named here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from channels.base import (
    Channel,
    ChannelContext,
    ConfirmingChannel,
    DigestingChannel,
    RebuildableChannel,
    StepStore,
)
from channels.registry import Capability, ChannelSpec, Registry, spec_for
from channels.site_footer import KEYS as FOOTER_KEYS
from dispatcher.errors import SettingsError
from dispatcher.rules.catalogue import Catalogue
from dispatcher.settings import Settings


@dataclass(frozen=True)
class Enabled:
    """An enabled channel: its object, its registry entry, and what it may run at once."""

    name: str
    spec: ChannelSpec
    channel: Channel
    concurrency: int

    @functools.cached_property  # a Protocol isinstance check is slow: once per worker
    def confirmer(self) -> ConfirmingChannel | None:
        """The channel, if it declared that its receipts may pend (and can confirm them)."""
        if self.spec.has(Capability.CONFIRM) and isinstance(self.channel, ConfirmingChannel):
            return self.channel
        return None

    @functools.cached_property
    def digester(self) -> DigestingChannel | None:
        """The channel, if it sends daily digests and this one is configured to."""
        if self.spec.has(Capability.DIGEST) and isinstance(self.channel, DigestingChannel):
            return self.channel if self.channel.digest_at is not None else None
        return None

    @functools.cached_property
    def rebuilder(self) -> RebuildableChannel | None:
        if self.spec.has(Capability.REBUILD) and isinstance(self.channel, RebuildableChannel):
            return self.channel
        return None


def channel_settings(settings: Settings, catalogue: Catalogue, name: str) -> dict[str, Any]:
    """What a channel's factory receives: the site's keys, the catalogue's outline and its own
    section (secrets included: never logged)."""
    site = settings.site
    shared = {"base_url": site.base_url, "title": site.title, "hub_url": site.hub_url,
              "footer": {key: getattr(site, key) for key in FOOTER_KEYS}}  # fmt: skip
    return {
        **shared,
        "outline": catalogue.outline(),  # the catalogue's domains and categories
        **settings.channels.section(name).model_dump(),
    }


def build_channel(
    settings: Settings,
    catalogue: Catalogue,
    registry: Registry,
    name: str,
    session: Any,
    steps: StepStore | None = None,
    redis: Any = None,
) -> Enabled:
    """The channel `name`; SettingsError if this version cannot send to it or it will not build."""
    spec = spec_for(registry, name)
    if spec is None or spec.factory is None:
        raise SettingsError(f"channel {name!r} is enabled but this version cannot send to it")
    context = ChannelContext(
        name=name,
        settings=channel_settings(settings, catalogue, name),
        session=session,
        data_dir=str(settings.data_path),
        steps=steps if spec.has(Capability.STEPS) else None,
        redis=redis,
    )
    try:
        channel = spec.factory(context)
    except (ValueError, TypeError, OSError) as exc:
        raise SettingsError(f"channel {name!r} cannot start: {exc}") from exc
    limits = settings.dispatch
    default = spec.in_flight or limits.channel_concurrency
    enabled = Enabled(name, spec, channel, limits.concurrency.get(name, default))
    implemented = {
        Capability.CONFIRM: enabled.confirmer is not None,
        Capability.REBUILD: enabled.rebuilder is not None,
        Capability.DIGEST: isinstance(channel, DigestingChannel),
    }
    for capability, done in implemented.items():
        if spec.has(capability) and not done:
            raise SettingsError(f"channel {name!r} declares {capability} but does not implement it")
    return enabled


def build_channels(
    settings: Settings,
    catalogue: Catalogue,
    registry: Registry,
    session: Any,
    steps: StepStore | None = None,
    redis: Any = None,
    names: Iterable[str] | None = None,
) -> dict[str, Enabled]:
    """Every enabled channel (or those of `names`), by name (`redis`: the workers' shared
    Redis client)."""
    return {
        name: build_channel(settings, catalogue, registry, name, session, steps, redis)
        for name in (settings.channels.enabled if names is None else names)
    }
