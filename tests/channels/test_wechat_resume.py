"""The WeChat channel on its own against the local stand-in: resuming after a worker died
between steps, a submit whose answer was lost, the article's limits, tokens and errors."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Mapping
from datetime import date
from typing import Any

import pytest

from channels.base import ChannelContext, Publication, RetryableError
from channels.wechat import SPEC, read_cover
from channels.wechat.api import WechatRefused, classify, seconds_to_next_day
from channels.wechat.article import TITLE_MAX, build_article
from channels.wechat.channel import WechatChannel
from channels.wechat.sandbox import RunningSandbox, Sandbox, running_sandbox

APPID, SECRET = "wx3333333333333333", "secret-three"


class Died(Exception):
    """The worker 'dies' here: nothing after this point of the attempt runs."""


@dataclasses.dataclass
class DyingSteps:
    """A StepStore that keeps what is saved and kills the attempt once `die_after` is saved."""

    die_after: str | None = None
    saved: dict[str, Any] = dataclasses.field(default_factory=dict)

    async def save(self, key: str, steps: Mapping[str, Any]) -> None:
        self.saved = dict(steps)
        if self.die_after is not None and self.die_after in steps:
            raise Died(self.die_after)


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with running_sandbox(Sandbox({APPID: SECRET})) as running:
        yield running


def channel(base_url: str, steps: DyingSteps | None = None, **settings: Any) -> WechatChannel:
    context = ChannelContext(
        name="wechat",
        settings={
            "base_url": "https://gk.example.gov.cn",
            "appid": APPID,
            "secret": SECRET,
            "api_base": base_url,
            "first_look": 0.05,
            **settings,
        },
        session=None,
        data_dir=".",
        steps=steps,
    )
    made = SPEC.factory(context)  # type: ignore[misc]
    assert isinstance(made, WechatChannel)
    return made


def publication(**changes: Any) -> Publication:
    values: dict[str, Any] = dict(
        key="7:1:wechat", item_id=7, version=1, action="publish", index_no="990100-2026-00007",
        agency_code="12990100MB0000004D", agency_name="示范市公共资源交易中心", domain="bidding",
        category="bid_candidates", title="中标候选人公示", summary="评标委员会推荐的中标候选人",
        body_html="<p>现将中标候选人公示如下。</p>", fields={"duration_days": 3}, withheld=(),
        formed_on=date(2026, 11, 20), changed_on=None, decision=None, project_code=None,
        region="990101", document_number=None, keywords=(), validity="有效", change_note=None,
        approved_at=None,
    )  # fmt: skip
    values.update(changes)
    return Publication(**values)


async def test_a_worker_killed_between_draft_and_submit_resumes_without_a_second_draft(
    sandbox: RunningSandbox,
) -> None:
    dying = DyingSteps(die_after="draft_media_id")
    with pytest.raises(Died):
        await channel(sandbox.base_url, dying).publish(publication())
    box = sandbox.sandbox
    assert box.count("cgi-bin/draft/add") == 1 and box.count("cgi-bin/freepublish/submit") == 0
    # A new worker (new channel object, new process state) picks the delivery up with its steps.
    again = channel(sandbox.base_url, DyingSteps())
    receipt = await again.publish(publication(steps=dying.saved))
    while receipt.pending:
        receipt = await again.confirm(publication(steps=receipt.steps), receipt)
    assert box.count("cgi-bin/draft/add") == 1 and box.count("cgi-bin/freepublish/submit") == 1
    assert [a.article_id for a in box.published(APPID)] == [receipt.external_id]


async def test_a_submit_whose_answer_was_lost_is_looked_up_never_sent_again(
    sandbox: RunningSandbox,
) -> None:
    sandbox.sandbox.faults.statuses = [0]  # the job is done at WeChat's first look at it
    dying = DyingSteps(die_after="publish_id")
    with pytest.raises(Died):
        await channel(sandbox.base_url, dying).publish(publication())
    lost = {k: v for k, v in dying.saved.items() if k != "publish_id"}  # the answer never saved
    assert lost["submit_sent"] is True
    box = sandbox.sandbox
    # Still publishing: the article is not listed yet, so the channel waits.
    with pytest.raises(RetryableError, match="submitted by an earlier try"):
        await channel(sandbox.base_url).publish(publication(steps=lost))
    [job] = box.jobs(APPID)
    await _settle(sandbox, job.publish_id)
    receipt = await channel(sandbox.base_url).publish(publication(steps=lost))
    assert not receipt.pending and receipt.external_id == box.published(APPID)[0].article_id
    assert box.count("cgi-bin/freepublish/submit") == 1


async def test_a_submit_that_never_reached_wechat_is_sent_once(sandbox: RunningSandbox) -> None:
    dying = DyingSteps(die_after="submit_sent")
    with pytest.raises(Died):
        await channel(sandbox.base_url, dying).publish(publication())
    receipt = await channel(sandbox.base_url).publish(publication(steps=dying.saved))
    assert receipt.pending and receipt.steps["publish_id"]
    assert sandbox.sandbox.count("cgi-bin/draft/get") == 1  # looked up: the draft was still there
    assert sandbox.sandbox.count("cgi-bin/freepublish/submit") == 1


async def test_a_body_over_the_limits_is_published_as_its_summary_with_read_more() -> None:
    long_body = "<p>" + "公示内容" * 6000 + "</p>"
    article = build_article(
        publication(body_html=long_body), "https://gk.example.gov.cn/items/7.html"
    )
    assert not article.complete and "阅读原文" in article.content
    assert "评标委员会推荐的中标候选人" in article.content and len(article.content) < 20_000
    short = build_article(publication(), "https://gk.example.gov.cn/items/7.html")
    assert short.complete and "现将中标候选人公示如下" in short.content
    titled = build_article(publication(title="标" * 40, summary="摘" * 300), "u")
    assert len(titled.title) == TITLE_MAX and len(titled.digest) == 128
    assert "标" * 40 in titled.content  # the full title opens the body
    assert build_article(publication(agency_name="示" * 30), "u").author == "示" * 15 + "…"


async def test_concurrent_callers_share_one_token_refresh(sandbox: RunningSandbox) -> None:
    made = channel(sandbox.base_url)
    tokens = await asyncio.gather(*(made.api.tokens.get() for _ in range(8)))
    assert len(set(tokens)) == 1 and sandbox.sandbox.count("cgi-bin/token") == 1
    for token in tokens:  # all eight were told it is invalid: one refresh between them
        await made.api.tokens.invalidate(token)
    again = await asyncio.gather(*(made.api.tokens.get() for _ in range(8)))
    assert len(set(again)) == 1 and sandbox.sandbox.count("cgi-bin/token") == 2


async def test_errors_keep_their_code_and_say_what_to_do(sandbox: RunningSandbox) -> None:
    quota = classify("message/mass/sendall", 45028, "has no masssend quota")
    assert isinstance(quota, RetryableError) and quota.retry_after is not None
    assert abs(quota.retry_after - seconds_to_next_day()) < 5  # the next Beijing day
    blocked = classify("draft/add", 40164, "invalid ip 1.2.3.4, not in whitelist")
    assert isinstance(blocked, WechatRefused) and blocked.code == 40164
    assert "40164" in str(blocked) and "allow-list" in str(blocked)
    wrong = channel(sandbox.base_url, secret="wrong")
    with pytest.raises(WechatRefused, match=r"40125.*secret"):
        await wrong.publish(publication())
    with pytest.raises(ValueError, match="JPEG of at most 64 KB"):
        read_cover(__file__)


async def _settle(sandbox: RunningSandbox, publish_id: str) -> None:
    """Ask the stand-in once for the job, as WeChat's own clock would advance it."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        query = {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
        token = await (await session.get(f"{sandbox.base_url}/cgi-bin/token", params=query)).json()
        await session.post(f"{sandbox.base_url}/cgi-bin/freepublish/get",
                           params={"access_token": token["access_token"]},
                           json={"publish_id": publish_id})  # fmt: skip


async def test_a_cover_material_that_is_gone_is_uploaded_again(sandbox: RunningSandbox) -> None:
    made = channel(sandbox.base_url)
    made.thumbs._local = ("a-material-deleted-in-the-console", time.monotonic() + 60)
    with pytest.raises(RetryableError, match="40007 the cover material no longer exists"):
        await made.publish(publication())
    receipt = await made.publish(publication())
    assert receipt.pending and len(sandbox.sandbox.thumbs(APPID)) == 1


async def test_workers_sharing_redis_fetch_one_token_and_upload_the_cover_once(
    sandbox: RunningSandbox, fresh_redis: str
) -> None:
    import redis.asyncio as aioredis

    clients = [aioredis.from_url(fresh_redis) for _ in range(3)]
    try:
        workers = [channel(sandbox.base_url) for _ in clients]
        for worker, client in zip(workers, clients, strict=True):  # each its own connection
            worker.api.tokens.redis = worker.thumbs.redis = client
        pubs = [publication(key=f"{n}:1:wechat", item_id=n) for n in range(1, 7)]
        await asyncio.gather(*(workers[n % 3].publish(p) for n, p in enumerate(pubs)))
    finally:
        for client in clients:
            await client.aclose()
    box = sandbox.sandbox
    assert box.count("cgi-bin/token") == 1 and box.count("cgi-bin/material/add_material") == 1
    assert box.count("cgi-bin/freepublish/submit") == 6
