"""The outlet sandbox's pages: in Chinese, what each outlet received and refused, and every
value from an event escaped — the outlet treats what it is sent as untrusted."""

from __future__ import annotations

from channels.media.sandbox import Outlet, new_secret
from tests.channels.media_sandbox.kit import NAME, Poster, event

CSP = "default-src 'none'; style-src 'unsafe-inline'"


async def test_the_overview_counts_what_each_outlet_received(
    poster: Poster, outlet: Outlet, secret: str
) -> None:
    body = event()
    await poster.send("7:1:media:xinhua", body, secret)
    await poster.send("7:1:media:xinhua", body, secret)
    await poster.send("8:1:media:xinhua", event(item_id=8), new_secret())
    status, head, html = await poster.get("/outlets/")
    assert status == 200 and head["Content-Security-Policy"] == CSP
    assert head["Content-Type"].startswith("text/html")
    assert "新闻媒体沙箱" in html and f'href="/outlets/{NAME}/"' in html
    assert "<td>1</td>\n<td>1</td><td>1</td><td>3</td>" in html  # accepted, twice, refused, all
    status, _, _ = await poster.get("/outlets")
    assert status == 200  # redirected to /outlets/


async def test_an_outlets_page_lists_its_events_newest_first_and_its_refusals(
    poster: Poster, outlet: Outlet, secret: str
) -> None:
    await poster.send("7:1:media:xinhua", event(title="第一版"), secret)
    await poster.send("7:2:media:xinhua", event("item.revised", version=2, title="第二版"),
                      secret)  # fmt: skip
    await poster.send("7:2:withdraw:media:xinhua", event("item.withdrawn", version=2,
                      title="第二版", withdrawal_reason="信息有误"), secret)  # fmt: skip
    await poster.send("9:1:media:xinhua", event(), new_secret())
    status, head, html = await poster.get(f"/outlets/{NAME}/")
    assert status == 200 and head["Content-Security-Policy"] == CSP
    assert html.index("撤回") < html.index("更正") < html.index(">发布<")
    assert f'href="/outlets/{NAME}/articles/3"' in html
    assert "HTTP 401" in html and "No matching signature found" in html
    status, _, withdrawn = await poster.get(f"/outlets/{NAME}/articles/3")
    assert status == 200 and "已撤回：信息有误" in withdrawn


async def test_an_article_shows_its_text_and_escapes_everything_it_was_sent(
    poster: Poster, outlet: Outlet, secret: str
) -> None:
    hostile = event(
        title="<script>alert(1)</script>公示",
        summary="<b>摘要</b>",
        body_html='<p>正文</p><img src=x onerror="alert(2)">',
        body_text="第一段\n第二段",
        url="javascript:alert(3)",
        agency=["not", "an", "object"],
    )
    answer = await poster.send("7:1:media:xinhua", hostile, secret)
    assert answer.status == 200
    for path in (f"/outlets/{NAME}/", f"/outlets/{NAME}/articles/1"):
        status, head, html = await poster.get(path)
        assert status == 200 and head["Content-Security-Policy"] == CSP
        assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;公示" in html
    assert "<img" not in html and "&lt;img src=x onerror=" in html  # shown as source only
    assert "<p>第一段</p>" in html and "<p>第二段</p>" in html
    assert "&lt;b&gt;摘要&lt;/b&gt;" in html and "javascript:" not in html


async def test_unknown_outlets_and_articles_are_404_pages(poster: Poster) -> None:
    articles = f"/outlets/{NAME}/articles"
    for path in ("/outlets/nobody/", "/outlets/nobody", f"{articles}/1", f"{articles}/x",
                 f"{articles}/²"):  # fmt: skip
        status, head, html = await poster.get(path)
        assert status == 404, path
        assert head["Content-Security-Policy"] == CSP and "没有这" in html
