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


def setup(app: web.Application) -> None:
    app[SITE_TEMPLATES] = make_environment(TEMPLATES_DIR)


def layout(settings: Settings) -> dict[str, Any]:
    site = settings.site
    return {"root": paths.root_path(site.base_url), "site_title": site.title,
            "footer": footer(site.model_dump())}  # fmt: skip


def render(app: web.Application, settings: Settings, template: str, context: dict[str, Any]) -> str:
    return app[SITE_TEMPLATES].get_template(template).render({**layout(settings), **context})
