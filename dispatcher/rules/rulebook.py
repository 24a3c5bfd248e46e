"""The rules a process works by, built once from the settings and passed to whoever needs them:
the catalogue, the working-day calendar (with the configured overrides) and the enabled
channels. The web app, the worker, the CLI and the demo all start with `build_rules`, so a bad
catalogue or calendar file stops each of them at start-up with the same message.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.rules.calendar import WorkCalendar
from dispatcher.rules.catalogue import Catalogue, load_catalogue
from dispatcher.rules.origins import image_origin
from dispatcher.settings import Settings


@dataclass(frozen=True)
class Rules:
    """What intake checks against and channels label with."""

    catalogue: Catalogue
    calendar: WorkCalendar
    enabled_channels: tuple[str, ...]
    # Where a body's images may come from (the site's own origin and `site.image_hosts`): a
    # host, or host:port when the port is not the scheme's own.
    image_hosts: frozenset[str] = frozenset()


def build_rules(settings: Settings) -> Rules:
    """The packaged catalogue, the calendar with `[calendar] overrides`, the enabled channels."""
    calendar = WorkCalendar.from_file(settings.calendar.overrides or None)
    own = image_origin(settings.site.base_url)
    hosts = frozenset({own, *settings.site.image_hosts} - {""})
    return Rules(load_catalogue(), calendar, settings.channels.enabled, hosts)
