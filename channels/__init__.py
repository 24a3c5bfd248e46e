"""Delivery channels, one module per channel (website, feeds, WeChat, news media).

A channel imports nothing from `dispatcher/`: what it needs (its settings section, an HTTP
session, a base URL, a site directory) is handed to it. The contract is `channels/base.py`;
each channel declares what the core needs to know of it in its registry entry
(`channels/registry.py`). Adding a channel is one module, one line below, and its tests.
"""

from __future__ import annotations

from channels import feeds, media, website, wechat
from channels.registry import make_registry

# Every channel this version knows, by kind ("media:NAME" channels look up "media").
REGISTRY = make_registry(website.SPEC, feeds.SPEC, wechat.SPEC, media.SPEC)

# 第一平台: the government website. Its publication time is the one deadlines are kept by; it
# cannot be disabled or left out of an item's channels.
FIRST_PLATFORM = website.SPEC.kind
