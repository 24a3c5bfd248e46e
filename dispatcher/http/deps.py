"""What every request handler may use, held by the app under one typed key."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from arq.connections import ArqRedis

from dispatcher.rules.rulebook import Rules
from dispatcher.settings import Settings
from dispatcher.storage.db import Database


@dataclass(frozen=True)
class Deps:
    settings: Settings
    db: Database
    rules: Rules
    queue: ArqRedis | None  # None: no Redis configured here; the sweeper enqueues instead


DEPS = web.AppKey("deps", Deps)
