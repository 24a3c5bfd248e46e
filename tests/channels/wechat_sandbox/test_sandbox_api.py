"""The WeChat sandbox speaks WeChat's protocol: tokens, uploads, drafts, publishing, mass sends
and faults, driven by wechatpy's real client and by raw HTTP (`kit.py`)."""

from __future__ import annotations

from functools import partial
from typing import Any

import aiohttp
import pytest
from wechatpy import WeChatClient

from channels.wechat.sandbox import (
    SANDBOX_APPID,
    SANDBOX_SECRET,
    THUMB_MAX,
    UPLOADIMG_MAX,
    Call,
    RunningSandbox,
    Sandbox,
)
from tests.channels.wechat_sandbox.kit import (
    OTHER_APPID,
    OTHER_SECRET,
    PNG,
    Api,
    Clock,
    article,
    call,
    client,
    draft,
    jpeg,
    publish,
    refused,
    thumb,
    upload,
)

# -- tokens ---------------------------------------------------------------------------------


async def test_running_sandbox_serves_on_a_free_local_port(running: RunningSandbox) -> None:
    assert running.base_url.startswith("http://127.0.0.1:")
    assert not running.base_url.endswith("/")
    assert running.base_url.rsplit(":", 1)[1] != "0"


async def test_a_new_token_invalidates_the_previous_one(api: Api, sandbox: Sandbox) -> None:
    first = await api.token_answer()
    assert first["expires_in"] == 7200
    second = await api.token()
    old, new = client(api.base_url, first["access_token"]), client(api.base_url, second)

    assert (await refused(lambda: old.draft.get("nothing"))).errcode == 40001
    assert (await refused(lambda: new.draft.get("nothing"))).errcode == 40007  # token accepted
    assert sandbox.calls[-2:] == [
        Call("cgi-bin/draft/get", SANDBOX_APPID, 40001),
        Call("cgi-bin/draft/get", SANDBOX_APPID, 40007),
    ]


@pytest.mark.parametrize(
    ("params", "errcode", "appid"),
    [
        ({"secret": "wrong"}, 40125, SANDBOX_APPID),
        ({"appid": "wxunknown"}, 40013, None),
        ({"grant_type": "password"}, 40002, SANDBOX_APPID),
    ],
)
async def test_token_refusals(
    api: Api, sandbox: Sandbox, params: dict[str, str], errcode: int, appid: str | None
) -> None:
    answer = await api.token_answer(**params)
    assert answer["errcode"] == errcode and "access_token" not in answer
    assert sandbox.calls == [Call("cgi-bin/token", appid, errcode)]


async def test_a_missing_or_unknown_token_is_refused(api: Api) -> None:
    assert (await api.post("draft/get", "", {"media_id": "x"}))["errcode"] == 40001
    assert (await api.post("draft/get", "forged", {"media_id": "x"}))["errcode"] == 40001


async def test_a_token_expires_after_two_hours(api: Api, clock: Clock) -> None:
    wx = await api.client()
    clock.now += 7199
    assert (await refused(lambda: wx.draft.get("x"))).errcode == 40007
    clock.now += 1
    error = await refused(lambda: wx.draft.get("x"))
    assert (error.errcode, error.errmsg) == (42001, "access_token expired")


async def test_a_token_of_one_account_reaches_only_its_own_drafts(api: Api) -> None:
    wx, other = await api.client(), await api.client(OTHER_APPID, OTHER_SECRET)
    media_id = await draft(wx)
    assert (await refused(lambda: other.draft.get(media_id))).errcode == 40007


# -- uploads --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "errcode"),
    [
        (b"", 41005),
        (b"GIF89a" + b"\0" * 100, 40005),
        (jpeg(UPLOADIMG_MAX), 40009),
    ],
    ids=["empty", "gif", "1MB"],
)
async def test_uploadimg_refusals(wx: WeChatClient, data: bytes, errcode: int) -> None:
    assert (await refused(lambda: wx.media.upload_image(upload(data)))).errcode == errcode


async def test_uploadimg_serves_what_it_stored(
    wx: WeChatClient, api: Api, sandbox: Sandbox
) -> None:
    png = PNG + b"picture"
    png_url = await call(lambda: wx.media.upload_image(upload(png, "a.png")))
    jpeg_url = await call(lambda: wx.media.upload_image(upload(jpeg(UPLOADIMG_MAX - 1))))

    assert png_url.startswith(f"{api.base_url}/mmbiz/{SANDBOX_APPID}/")
    assert png_url.endswith(".png") and jpeg_url.endswith(".jpg")
    async with api.http.get(png_url) as response:
        assert response.status == 200
        assert response.content_type == "image/png"
        assert await response.read() == png
    assert [i.url for i in sandbox.images()] == [png_url, jpeg_url]
    assert sandbox.count("cgi-bin/media/uploadimg", SANDBOX_APPID) == 2


@pytest.mark.parametrize(
    ("media_type", "data", "errcode"),
    [
        ("thumb", jpeg(THUMB_MAX), 0),
        ("thumb", jpeg(THUMB_MAX + 1), 40009),
        ("thumb", PNG + b"\0" * 100, 40005),
        ("thumb", b"", 41005),
        ("image", PNG + b"\0" * 100, 0),
        ("sticker", jpeg(), 40004),
    ],
    ids=["64KB", "over-64KB", "png-thumb", "empty", "png-image", "bad-type"],
)
async def test_add_material_limits(
    wx: WeChatClient, sandbox: Sandbox, media_type: str, data: bytes, errcode: int
) -> None:
    if errcode:
        error = await refused(lambda: wx.material.add(media_type, upload(data)))
        assert error.errcode == errcode
        assert not sandbox.thumbs()
        return
    answer = await call(lambda: wx.material.add(media_type, upload(data)))
    assert answer["media_id"] and answer["url"]
    thumbs = sandbox.thumbs()
    assert [t.media_id for t in thumbs] == ([answer["media_id"]] if media_type == "thumb" else [])


# -- drafts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"title": ""}, 45003),
        ({"title": "题" * 33}, 45003),
        ({"author": "作" * 17}, 45110),
        ({"digest": "摘" * 129}, 45004),
        ({"content": ""}, 45002),
        ({"content": "字" * 20_000}, 45002),
        ({"thumb_media_id": "no-such-thumb"}, 40007),
        ({"content": '<p><img src="https://example.com/a.jpg"></p>'}, 45166),
        ({"content": "<p><img></p>"}, 45166),
        ({"content_source_url": "https://gk.example.gov.cn/" + "a" * 1000}, 45005),
        ({"title": "题" * 33, "author": "作" * 17}, 45003),  # the first limit in WeChat's order
    ],
    ids=[
        "no-title",
        "long-title",
        "author",
        "digest",
        "no-content",
        "long-content",
        "thumb",
        "external-image",
        "image-without-src",
        "source-url",
        "order",
    ],
)
async def test_draft_limits(
    wx: WeChatClient, sandbox: Sandbox, overrides: dict[str, str], errcode: int
) -> None:
    item = article(await thumb(wx), **overrides)
    assert (await refused(lambda: wx.draft.add([item]))).errcode == errcode
    assert not sandbox.drafts()


async def test_a_draft_at_every_limit_is_accepted(wx: WeChatClient, sandbox: Sandbox) -> None:
    image = await call(lambda: wx.media.upload_image(upload(jpeg())))
    content = f'<p><img src="{image}"></p>'
    limits = {
        "title": "题" * 32,
        "author": "作" * 16,
        "digest": "摘" * 128,
        "content": content + "字" * (19_999 - len(content)),
    }
    media_id = await draft(wx, **limits)
    assert [d.media_id for d in sandbox.drafts()] == [media_id]
    assert sandbox.drafts()[0].articles[0].title == "题" * 32


@pytest.mark.parametrize("count", [0, 9])
async def test_a_draft_has_one_to_eight_articles(wx: WeChatClient, count: int) -> None:
    items = [article(await thumb(wx))] * count
    assert (await refused(lambda: wx.draft.add(items))).errcode == 45008


async def test_an_image_of_another_account_is_refused(api: Api) -> None:
    wx, other = await api.client(), await api.client(OTHER_APPID, OTHER_SECRET)
    theirs = await call(lambda: other.media.upload_image(upload(jpeg())))
    item = article(await thumb(wx), content=f'<img src="{theirs}">')
    assert (await refused(lambda: wx.draft.add([item]))).errcode == 45166


async def test_draft_get_and_delete(wx: WeChatClient, sandbox: Sandbox) -> None:
    media_id = await draft(wx, title="草稿标题")
    news = (await call(lambda: wx.draft.get(media_id)))["news_item"]
    assert [(n["title"], n["url"]) for n in news] == [("草稿标题", "")]

    assert await call(lambda: wx.draft.delete(media_id)) == {"errcode": 0, "errmsg": "ok"}
    assert (await refused(lambda: wx.draft.get(media_id))).errcode == 40007
    assert (await refused(lambda: wx.draft.delete(media_id))).errcode == 40007
    assert not sandbox.drafts()


# -- publishing -----------------------------------------------------------------------------


async def test_submit_then_get_publishes(wx: WeChatClient, api: Api, sandbox: Sandbox) -> None:
    media_id = await draft(wx)
    submitted = await call(lambda: wx.freepublish.submit(media_id))
    publish_id = submitted["publish_id"]
    assert publish_id.isdigit() and isinstance(submitted["msg_data_id"], int)
    assert not sandbox.drafts()  # a submit consumes its draft
    assert (await refused(lambda: wx.freepublish.submit(media_id))).errcode == 40007

    first = await call(lambda: wx.freepublish.get(publish_id))
    assert first["publish_status"] == 1 and "article_id" not in first
    assert not sandbox.published()
    second = await call(lambda: wx.freepublish.get(publish_id))
    assert second["publish_status"] == 0 and second["fail_idx"] == []
    article_id = second["article_id"]
    url = f"{api.base_url}/s/{article_id}?idx=1"
    assert second["article_detail"] == {"count": 1, "item": [{"idx": 1, "article_url": url}]}
    assert (await call(lambda: wx.freepublish.get(publish_id)))["publish_status"] == 0

    [published] = sandbox.published()
    assert (published.article_id, published.url, published.deleted) == (article_id, url, False)
    status, content_type, page = await api.get(f"/s/{article_id}?idx=1")
    assert status == 200 and content_type == "text/html"
    assert "某某工程中标候选人公示" in page and "<p>公示期三日。</p>" in page
    assert 'href="https://gk.example.gov.cn/items/7">阅读原文' in page
    assert '<meta charset="utf-8">' in page and 'lang="zh-CN"' in page

    news = (await call(lambda: wx.freepublish.getarticle(article_id)))["news_item"]
    assert [(n["title"], n["url"], n["is_deleted"]) for n in news] == [
        ("某某工程中标候选人公示", url, False)
    ]
    listed = await call(lambda: wx.freepublish.batchget(0, 20))
    assert (listed["total_count"], listed["item_count"]) == (1, 1)
    assert listed["item"][0]["article_id"] == article_id
    assert listed["item"][0]["content"]["news_item"][0]["content"] == "<p>公示期三日。</p>"


async def test_a_failed_publish_reports_fail_idx(wx: WeChatClient, sandbox: Sandbox) -> None:
    sandbox.faults.statuses = [1, 4]
    media_id = await draft(wx)
    publish_id = (await call(lambda: wx.freepublish.submit(media_id)))["publish_id"]
    answers = [await call(lambda: wx.freepublish.get(publish_id)) for _ in range(3)]
    assert [a["publish_status"] for a in answers] == [1, 4, 4]
    assert answers[1]["fail_idx"] == [1] and "article_id" not in answers[1]
    assert not sandbox.published()
    assert (await refused(lambda: wx.freepublish.get("999"))).errcode == 40007


async def test_a_deleted_article_is_gone(wx: WeChatClient, api: Api, sandbox: Sandbox) -> None:
    article_id = (await publish(wx))["article_id"]
    ok = {"errcode": 0, "errmsg": "ok"}
    assert await call(lambda: wx.freepublish.delete(article_id, 0)) == ok

    status, _, page = await api.get(f"/s/{article_id}?idx=1")
    assert status == 404 and "该内容已被发布者删除" in page
    assert sandbox.published()[0].deleted
    news = (await call(lambda: wx.freepublish.getarticle(article_id)))["news_item"]
    assert news[0]["is_deleted"] is True
    assert await call(lambda: wx.freepublish.delete(article_id, 0)) == ok  # again: still ok
    assert (await refused(lambda: wx.freepublish.delete("no-such-article", 0))).errcode == 53600


# -- mass sends -----------------------------------------------------------------------------


async def test_mass_send_quota_and_clientmsgid(
    wx: WeChatClient, api: Api, sandbox: Sandbox, clock: Clock
) -> None:
    media_id = await draft(wx, title="群发标题")

    def send(clientmsgid: str, to: str = media_id, by: WeChatClient = wx) -> dict[str, Any]:
        return dict(by.message.send_mass_article(to, is_to_all=True, client_msg_id=clientmsgid))

    first = await call(lambda: send("item-7-v1"))
    assert first["errmsg"] == "send job submission success" and isinstance(first["msg_id"], int)

    again = await refused(lambda: send("item-7-v1"))
    assert again.errcode == 45065
    assert again.response.json()["msg_id"] == first["msg_id"]  # the earlier send's
    assert (await refused(lambda: send("item-8-v1"))).errcode == 45028  # one a Beijing day
    assert (await refused(lambda: send("item-9-v1", "no-such-draft"))).errcode == 40007
    text = await refused(lambda: wx.message.send_mass_text("文字", is_to_all=True))
    assert text.errcode == 40008

    clock.now += 12 * 3600  # midnight in Beijing: a new day's quota (and a new token)
    fresh = await api.client()
    second = await call(lambda: send("item-8-v1", by=fresh))
    assert [(s.clientmsgid, s.msg_id, s.titles) for s in sandbox.mass_sends()] == [
        ("item-7-v1", first["msg_id"], ("群发标题",)),
        ("item-8-v1", second["msg_id"], ("群发标题",)),
    ]


async def test_a_mass_quota_can_be_raised(wx: WeChatClient, sandbox: Sandbox) -> None:
    sandbox.faults.mass_quota = 2
    media_id = await draft(wx)
    send = wx.message.send_mass_article
    for clientmsgid in ("a", "b"):
        await call(partial(send, media_id, is_to_all=True, client_msg_id=clientmsgid))
    assert len(sandbox.mass_sends()) == 2


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "errcodes"),
    [
        ({"busy": 2}, [-1, -1, 40007]),
        ({"rate_limited": 1}, [45011, 40007, 40007]),
        ({"invalid_token": True}, [40001, 40001, 40001]),
        ({"ip_blocked": True}, [40164, 40164, 40164]),
    ],
)
async def test_api_faults(
    wx: WeChatClient, sandbox: Sandbox, faults: dict[str, object], errcodes: list[int]
) -> None:
    sandbox.set_faults(faults)
    seen = [(await refused(lambda: wx.draft.get("x"))).errcode for _ in errcodes]
    assert seen == errcodes  # 40007: the fault is spent, the call reached the draft box
    sandbox.reset_faults()
    assert (await refused(lambda: wx.draft.get("x"))).errcode == 40007


async def test_an_ip_block_refuses_tokens_too(api: Api, sandbox: Sandbox) -> None:
    sandbox.faults.ip_blocked = True
    answer = await api.token_answer()
    assert answer["errcode"] == 40164
    assert answer["errmsg"] == "invalid ip 127.0.0.1, not in whitelist"


async def test_token_delay_holds_the_token_answer(api: Api, sandbox: Sandbox) -> None:
    sandbox.faults.token_delay = 30
    with pytest.raises(TimeoutError):
        async with api.http.get(
            f"{api.base_url}/cgi-bin/token",
            params={
                "grant_type": "client_credential",
                "appid": SANDBOX_APPID,
                "secret": SANDBOX_SECRET,
            },
            timeout=aiohttp.ClientTimeout(total=0.2),
        ):
            pass


async def test_faults_and_calls_over_http(api: Api, sandbox: Sandbox) -> None:
    url = f"{api.base_url}/sandbox/faults"
    async with api.http.post(url, json={"busy": 1, "statuses": [1, 4], "push_after": 0}) as r:
        assert r.status == 200
        assert (await r.json())["statuses"] == [1, 4]
    assert (sandbox.faults.busy, sandbox.faults.push_after) == (1, 0)
    for wrong in ({"busy": "many"}, {"nonsense": 1}, {"statuses": [7]}, [1]):
        async with api.http.post(url, json=wrong) as r:
            assert r.status == 400
    async with api.http.delete(url) as r:
        assert (await r.json())["busy"] == 0
    assert sandbox.faults.statuses == [1, 0] and sandbox.faults.busy == 0

    token = await api.token()
    await api.post("draft/get", token, {"media_id": "x"})
    async with api.http.get(f"{api.base_url}/sandbox/calls.json") as r:
        calls = await r.json()
    assert calls["counts"] == {"cgi-bin/token": 1, "cgi-bin/draft/get": 1}
    assert calls["calls"][-1] == {
        "endpoint": "cgi-bin/draft/get",
        "appid": SANDBOX_APPID,
        "errcode": 40007,
    }


async def test_an_unknown_api_is_unauthorized(wx: WeChatClient, sandbox: Sandbox) -> None:
    assert (await refused(lambda: wx.draft.count())).errcode == 48001
    assert sandbox.count("cgi-bin/draft/count") == 1


async def test_a_body_that_is_not_json_is_a_format_error(api: Api) -> None:
    url = f"{api.base_url}/cgi-bin/draft/add"
    params = {"access_token": await api.token()}
    async with api.http.post(url, params=params, data=b"{not json") as response:
        assert (await response.json())["errcode"] == 47001
