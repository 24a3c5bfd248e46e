"""The public site's templates for the pages the app renders itself (search, the 404 page):
one environment per app, and what every page's layout needs — the site's root path, its
title and its footer (`channels.site_footer`: 主办单位, 网站标识码, the filing numbers …), the
same as on the pages the website channel writes."""

from __future__ import annotations

from typing import Any

import jinja2
from aiohttp import web

from channels import paths
from channels.site_footer import footer
from channels.website import TEMPLATES_DIR, make_environment
from dispatcher.settings import Settings

SITE_TEMPLATES = web.AppKey("site_templates", jinja2.Environment)
LAYOUT: web.AppKey[dict[str, Any]] = web.AppKey("site_layout")


def setup(app: web.Application, settings: Settings) -> None:
    """The environment and the layout's values, made once for the app."""
    app[SITE_TEMPLATES] = make_environment(TEMPLATES_DIR)
    site = settings.site
    app[LAYOUT] = {"root": paths.root_path(site.base_url), "site_title": site.title,
                   "footer": footer(site.model_dump())}  # fmt: skip


def render(app: web.Application, template: str, context: dict[str, Any]) -> str:
    layout: dict[str, Any] = app[LAYOUT]
    return app[SITE_TEMPLATES].get_template(template).render({**layout, **context})
