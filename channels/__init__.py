"""Delivery channels, one module per channel (website, feeds, WeChat, media, …).

A channel imports nothing from `dispatcher/`: what it needs (its settings section, an HTTP
session, a base URL, a site directory) is handed to it. The contract lives in `channels/base.py`
with the dispatcher; until then the core only records one pending delivery row per enabled
channel when an item is approved (the outbox).
"""

from __future__ import annotations

from channels.base import ChannelFactory, make_registry
from channels.feeds import feeds_factory
from channels.website import website_factory

# Every channel this version can send to, by name ("media:NAME" channels look up "media").
REGISTRY: dict[str, ChannelFactory] = make_registry(
    ("website", website_factory),
    ("feeds", feeds_factory),
)
