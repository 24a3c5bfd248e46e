"""The WeChat sandbox's markup: the pages a person reads, the event XML it pushes, the images
it finds in article content.

Pages are Jinja2 templates with autoescaping, so a title like `<b>…</b>` shows as text. An
article's content is shown as given, as WeChat shows it: the sender has sanitized it. The
functions take the sandbox's records by attribute (`channels.wechat.sandbox_records`), which this
module does not import, so the two stay one-way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html.parser import HTMLParser

from channels.standins import environment

_OVERVIEW = """\
{% extends "layout" %}
{% block body %}
<h1>微信公众号沙箱</h1>
<p class="note">本页显示本地沙箱收到的内容，均未发布到真实的微信公众号。</p>
<p>故障开关：{% for name, value in faults.items() %}
<code>{{ name }}={{ value }}</code>
{% endfor %}</p>
{% for account in accounts %}
<section>
<h2>公众号 <code>{{ account.appid }}</code></h2>
<h3>已发布文章（{{ account.articles | length }}）</h3>
{% if account.articles %}<ol>
{% for a in account.articles | reverse %}
<li><a href="/s/{{ a.article_id }}?idx={{ a.idx }}">{{ a.title }}</a>
<span class="meta">{{ a.published_at | beijing }}</span>
{% if a.deleted %}<strong class="deleted">已删除</strong>{% endif %}</li>
{% endfor %}
</ol>{% else %}<p class="note">暂无</p>{% endif %}
<h3>草稿箱（{{ account.drafts | length }}）</h3>
{% if account.drafts %}<ul>
{% for draft in account.drafts.values() %}
<li>{{ draft.articles | map(attribute="title") | join("、") }}
<span class="meta">{{ draft.created_at | beijing }}</span></li>
{% endfor %}
</ul>{% else %}<p class="note">暂无</p>{% endif %}
<h3>群发（{{ account.mass_sends | length }}）</h3>
{% if account.mass_sends %}<ul>
{% for sent in account.mass_sends | reverse %}
<li>{{ sent.titles | join("、") }} <span class="meta">{{ sent.sent_at | beijing }}
msg_id {{ sent.msg_id }}
{% if sent.clientmsgid %}，clientmsgid {{ sent.clientmsgid }}{% endif %}</span></li>
{% endfor %}
</ul>{% else %}<p class="note">暂无</p>{% endif %}
<p>已上传正文图片 {{ account.images | length }} 张，
永久素材 {{ account.materials | length }} 个。</p>
</section>
{% endfor %}
<section>
<h2>最近 {{ calls | length }} 次接口调用</h2>
<table>
<thead><tr><th>接口</th><th>公众号</th><th>错误码</th></tr></thead>
<tbody>
{% for call in calls %}
<tr><td><code>{{ call.endpoint }}</code></td><td>{{ call.appid or "—" }}</td>
<td{% if call.errcode %} class="failed"{% endif %}>{{ call.errcode }}</td></tr>
{% endfor %}
</tbody>
</table>
</section>
{% endblock %}
"""

_ARTICLE = """\
{% extends "layout" %}
{% block title %}{{ a.title }}{% endblock %}
{% block body %}
<article>
<h1>{{ a.title }}</h1>
<p class="meta">{% if a.author %}{{ a.author }} {% endif %}{{ a.published_at | beijing }}</p>
<div class="content">{{ a.content | safe }}</div>
{% if a.content_source_url.startswith(("http://", "https://")) %}
<p><a href="{{ a.content_source_url }}">阅读原文</a></p>
{% endif %}
</article>
{% endblock %}
"""

_ENV = environment("微信公众号沙箱", {"overview": _OVERVIEW, "article": _ARTICLE})


def overview(accounts: Sequence[object], calls: Sequence[object], faults: Mapping[str, object]
             ) -> str:  # fmt: skip
    """`/sandbox/`: per account what it published, drafted and mass-sent; the latest calls."""
    return _ENV.get_template("overview").render(accounts=accounts, calls=calls, faults=faults)


def article(article: object) -> str:
    """`/s/{article_id}`: a published article as its readers see it."""
    return _ENV.get_template("article").render(a=article)


def notice(text: str) -> str:
    """A page saying only `text` (a deleted or unknown article)."""
    return _ENV.get_template("notice").render(text=text)


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def publish_event(
    gh_id: str,
    create_time: str,
    publish_id: str,
    status: int,
    article_id: str | None,
    urls: Sequence[str],
    count: int,
) -> str:
    """The PUBLISHJOBFINISH event's XML, as WeChat pushes it (plaintext mode).

    On success (`status` 0) it names the article and the URL of each of its `urls`; otherwise
    it lists the failed articles' indexes (all `count` of them) as `fail_idx`.
    """
    if status == 0 and article_id is not None:
        items = "".join(
            f"<item><idx>{idx}</idx><article_url>{_cdata(url)}</article_url></item>"
            for idx, url in enumerate(urls, start=1)
        )
        outcome = (
            f"<article_id>{_cdata(article_id)}</article_id>"
            f"<article_detail><count>{len(urls)}</count>{items}</article_detail>"
        )
    else:
        outcome = "".join(f"<fail_idx>{idx}</fail_idx>" for idx in range(1, count + 1))
    return (
        f"<xml><ToUserName>{_cdata(gh_id)}</ToUserName>"
        f"<FromUserName>{_cdata('o' + gh_id[3:].ljust(27, 'A'))}</FromUserName>"
        f"<CreateTime>{create_time}</CreateTime>"
        f"<MsgType>{_cdata('event')}</MsgType><Event>{_cdata('PUBLISHJOBFINISH')}</Event>"
        f"<PublishEventInfo><publish_id>{publish_id}</publish_id>"
        f"<publish_status>{status}</publish_status>{outcome}</PublishEventInfo></xml>"
    )


class _ImgSources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.add((dict(attrs).get("src") or "").strip())


def img_sources(content: str) -> set[str]:
    """The `src` of every `<img>` in article `content` ("" for an `<img>` without one)."""
    parser = _ImgSources()
    parser.feed(content)
    parser.close()
    return parser.sources
