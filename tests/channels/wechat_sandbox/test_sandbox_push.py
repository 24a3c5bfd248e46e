"""The WeChat sandbox's event push (signed, to the account's callback URL) and its pages."""

from __future__ import annotations

from functools import partial

from wechatpy import WeChatClient

from channels.wechat.sandbox import (
    Sandbox,
)
from tests.channels.wechat_sandbox.kit import (
    CALLBACK_TOKEN,
    Api,
    Receiver,
    call,
    draft,
    info,
    publish,
)


async def test_a_publish_pushes_a_signed_event(pushing: WeChatClient, receiver: Receiver) -> None:
    answer = await publish(pushing)

    event = await receiver.next_event()
    assert receiver.signed == [True]
    assert event.findtext("MsgType") == "event" and event.findtext("Event") == "PUBLISHJOBFINISH"
    assert (event.findtext("ToUserName") or "").startswith("gh_")
    assert dict(info(event)) == {
        "publish_id": answer["publish_id"],
        "publish_status": "0",
        "article_id": answer["article_id"],
        "count": "1",
        "idx": "1",
        "article_url": answer["article_detail"]["item"][0]["article_url"],
    }


async def test_push_after_finishes_a_job_without_polling(
    pushing: WeChatClient, sandbox: Sandbox, receiver: Receiver
) -> None:
    sandbox.set_faults({"statuses": [1, 4], "push_after": 0.0})
    media_id = await draft(pushing)
    publish_id = (await call(lambda: pushing.freepublish.submit(media_id)))["publish_id"]

    event = await receiver.next_event()
    assert dict(info(event)) == {"publish_id": publish_id, "publish_status": "4", "fail_idx": "1"}
    answer = await call(lambda: pushing.freepublish.get(publish_id))
    assert (answer["publish_status"], answer["fail_idx"]) == (4, [1])
    assert receiver.signed == [True]  # one push per job


async def test_a_failing_callback_does_not_fail_the_publish(api: Api, sandbox: Sandbox) -> None:
    sandbox.add_account("wxpush000000000002", "s", f"{api.base_url}/nowhere", CALLBACK_TOKEN)
    wx = await api.client("wxpush000000000002", "s")
    await publish(wx)
    assert [a.title for a in sandbox.published("wxpush000000000002")] == ["某某工程中标候选人公示"]


# -- pages ----------------------------------------------------------------------------------


async def test_the_overview_lists_what_was_published_escaped(wx: WeChatClient, api: Api) -> None:
    await publish(wx, title="<b>粗体</b>公告")
    media_id = await draft(wx, title="待发草稿")
    send = wx.message.send_mass_article
    await call(partial(send, media_id, is_to_all=True, client_msg_id="notice-7"))

    status, content_type, page = await api.get("/sandbox/")
    assert status == 200 and content_type == "text/html"
    assert "<title>微信公众号沙箱</title>" in page and 'lang="zh-CN"' in page
    assert "&lt;b&gt;粗体&lt;/b&gt;公告" in page and "<b>粗体" not in page
    assert "待发草稿" in page and "notice-7" in page and "cgi-bin/freepublish/get" in page
    article_id = (await call(lambda: wx.freepublish.batchget(0, 1)))["item"][0]["article_id"]
    _, _, article_page = await api.get(f"/s/{article_id}?idx=1")
    assert "<title>&lt;b&gt;粗体&lt;/b&gt;公告</title>" in article_page


async def test_an_unknown_article_page_is_404(api: Api) -> None:
    assert (await api.get("/s/nothing?idx=1"))[0] == 404
