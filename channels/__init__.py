"""Delivery channels, one module per channel (website, feeds, WeChat, media, …).

A channel imports nothing from `dispatcher/`: what it needs (its settings section, an HTTP
session, a base URL, a site directory) is handed to it. The contract lives in `channels/base.py`
with the dispatcher; until then the core only records one pending delivery row per enabled
channel when an item is approved (the outbox).
"""
