"""The outlet sandbox's pages, in Chinese: the outlets, one outlet's events, one article.

Jinja2 templates with autoescaping. What an outlet received is untrusted input to it, as to a
real outlet: only strings taken out of an event reach a template (`_text`), so a field of
another type shows as nothing, and everything is escaped — an article shows `body_text`, and
`body_html` only as escaped source, never as markup. Links are made only of `http(s)://` URLs.
The functions take the sandbox's records by attribute (`channels.media.sandbox`), which this
module does not import, so the two stay one-way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from channels.standins import beijing, environment

TYPE_NAMES = {"item.published": "发布", "item.revised": "更正", "item.withdrawn": "撤回"}
LATEST_REFUSALS = 20  # refusals an outlet's page lists, newest first

_OVERVIEW = """\
{% extends "layout" %}
{% block body %}
<h1>新闻媒体沙箱</h1>
<p class="note">本页显示本地沙箱中的媒体收到的事件，均未发送到真实的新闻媒体。</p>
{% if outlets %}
<table>
<thead><tr><th>媒体</th><th>已接收</th><th>重复</th><th>拒绝</th><th>请求总数</th>
<th>待执行故障</th></tr></thead>
<tbody>
{% for o in outlets %}
<tr><td><a href="/outlets/{{ o.name }}/">{{ o.name }}</a></td><td>{{ o.received | length }}</td>
<td>{{ o.duplicates }}</td><td>{{ o.refused | length }}</td><td>{{ o.attempts }}</td>
<td>{{ o.script | join("、") or "—" }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}<p class="note">暂无媒体</p>{% endif %}
{% endblock %}
"""

_OUTLET = """\
{% extends "layout" %}
{% block title %}新闻媒体沙箱：{{ o.name }}{% endblock %}
{% block body %}
<p><a href="/outlets/">新闻媒体沙箱</a></p>
<h1>媒体 <code>{{ o.name }}</code></h1>
<p>已接收 {{ o.received | length }} 个事件，重复 {{ o.duplicates }} 次，
拒绝 {{ o.refused | length }} 次，共 {{ o.attempts }} 次请求。</p>
<section>
<h2>已接收的事件（最新在前）</h2>
{% if events %}
<table>
<thead><tr><th>类型</th><th>标题</th><th>条目</th><th>版本</th><th>接收时间</th><th>稿件</th></tr>
</thead>
<tbody>
{% for e in events %}
<tr><td{% if e.withdrawn %} class="withdrawn"{% endif %}>{{ e.type_name }}</td>
<td>{{ e.title }}</td><td>{{ e.item_id }}</td><td>{{ e.version }}</td>
<td>{{ e.received_at }}</td><td><a href="{{ e.page }}">{{ e.article_id }}</a></td></tr>
{% endfor %}
</tbody>
</table>
{% else %}<p class="note">暂无</p>{% endif %}
</section>
<section>
<h2>最近的拒绝（{{ refusals | length }}）</h2>
{% if refusals %}<ul>
{% for status, reason in refusals %}
<li><span class="failed">HTTP {{ status }}</span> {{ reason }}</li>
{% endfor %}
</ul>{% else %}<p class="note">暂无</p>{% endif %}
</section>
{% endblock %}
"""

_ARTICLE = """\
{% extends "layout" %}
{% block title %}{{ e.title }}{% endblock %}
{% block body %}
<p><a href="/outlets/{{ outlet }}/">媒体 {{ outlet }}</a></p>
<article>
<h1>{{ e.title }}</h1>
<p class="meta">{{ e.type_name }} · {{ e.agency }} · 条目 {{ e.item_id }} 第 {{ e.version }} 版 ·
{{ e.received_at }} 接收</p>
{% if e.withdrawn %}
<p class="withdrawn">已撤回{% if e.withdrawal_reason %}：{{ e.withdrawal_reason }}{% endif %}</p>
{% endif %}
{% if e.summary %}<p><strong>{{ e.summary }}</strong></p>{% endif %}
{% for paragraph in e.paragraphs %}
<p>{{ paragraph }}</p>
{% endfor %}
{% if e.source %}<p><a href="{{ e.source }}">政府网站原文</a></p>{% endif %}
<details><summary>正文 HTML（源码）</summary><pre>{{ e.body_html }}</pre></details>
</article>
{% endblock %}
"""

_ENV = environment("新闻媒体沙箱", {"overview": _OVERVIEW, "outlet": _OUTLET, "article": _ARTICLE})


def _text(value: object) -> str:
    """A string field of an event as sent; anything else is nothing."""
    return value if isinstance(value, str) else ""


def _event(outlet: str, received: Any) -> dict[str, Any]:
    """What the pages show of one accepted event: strings and the ints the sandbox checked."""
    data: Mapping[str, Any] = received.data
    agency = data.get("agency")
    url = _text(data.get("url"))
    number = received.article_id.removeprefix("art-")
    return {
        "type_name": TYPE_NAMES.get(received.type, received.type),
        "withdrawn": received.type == "item.withdrawn",
        "item_id": received.item_id,
        "version": received.version,
        "article_id": received.article_id,
        "page": f"/outlets/{outlet}/articles/{number}",
        "received_at": beijing(received.received_at),
        "title": _text(data.get("title")) or "（无标题）",
        "summary": _text(data.get("summary")),
        "agency": _text(agency.get("name")) if isinstance(agency, dict) else "",
        "paragraphs": [line for line in _text(data.get("body_text")).splitlines() if line],
        "body_html": _text(data.get("body_html")),
        "withdrawal_reason": _text(data.get("withdrawal_reason")),
        "source": url if url.startswith(("http://", "https://")) else "",
    }


def overview(outlets: Sequence[Any]) -> str:
    """`/outlets/`: each outlet and how many events it accepted, saw twice, refused."""
    return _ENV.get_template("overview").render(outlets=outlets)


def outlet(outlet: Any) -> str:
    """`/outlets/{name}/`: the events the outlet accepted, newest first; its latest refusals."""
    events = [_event(outlet.name, r) for r in reversed(outlet.received)]
    refusals = outlet.refused[-LATEST_REFUSALS:][::-1]
    return _ENV.get_template("outlet").render(o=outlet, events=events, refusals=refusals)


def article(outlet: Any, received: Any) -> str:
    """`/outlets/{name}/articles/{n}`: one accepted event as the outlet's article."""
    return _ENV.get_template("article").render(outlet=outlet.name, e=_event(outlet.name, received))


def notice(text: str) -> str:
    """A page saying only `text` (an unknown outlet or article)."""
    return _ENV.get_template("notice").render(text=text)
