"""What the local stand-ins share (the WeChat sandbox, the news-outlet sandbox): serving their
app on a port, and their pages' layout, notice page, Beijing times and Jinja2 environment.

A stand-in's templates extend "layout" and fill `body` (and `title`, which defaults to the
stand-in's name, given as `site`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime

import jinja2
from aiohttp import web

from channels.base import SHANGHAI

LAYOUT = """\
<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}{{ site }}{% endblock %}</title>
<style>
body { font-family: system-ui, "PingFang SC", "Microsoft YaHei", sans-serif; margin: 2rem auto;
       max-width: 60rem; padding: 0 1rem; line-height: 1.6; color: #222; }
section { border-top: 1px solid #ddd; margin-top: 1.5rem; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: .2rem .5rem; }
.meta, .note { color: #777; } .deleted, .withdrawn, .failed { color: #b00; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: .5rem; }
</style>
</head>
<body>
{% block body %}{% endblock %}
</body>
</html>
"""

NOTICE = """\
{% extends "layout" %}
{% block body %}<p class="note">{{ text }}</p>{% endblock %}
"""


def beijing(at: datetime) -> str:
    """ "YYYY-MM-DD HH:MM:SS" in Beijing time (isoformat: several times faster than strftime)."""
    return at.astimezone(SHANGHAI).isoformat(" ", "seconds")[:19]


def environment(site: str, templates: Mapping[str, str]) -> jinja2.Environment:
    """The stand-in `site`'s templates (its name is every page's default title) with the shared
    layout and notice; autoescaping on, undefined names an error."""
    env = jinja2.Environment(
        loader=jinja2.DictLoader({"layout": LAYOUT, "notice": NOTICE, **templates}),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["beijing"] = beijing
    env.globals["site"] = site
    return env


@asynccontextmanager
async def serving(
    app: web.Application, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve `app` on `host`:`port` (0: a free port) until exit; yield its base URL. The address
    is reusable at once, so a stand-in can be served again on the same port right after."""
    # A wildcard address is where it listens, not a URL a client can use.
    wildcard = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104
    shown = wildcard.get(host, host)
    shown = f"[{shown}]" if ":" in shown else shown
    runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        yield f"http://{shown}:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
