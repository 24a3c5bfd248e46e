"""The followers' daily digest (群发) of one account: one draft of the day's articles, sent to
every follower with `message/mass/sendall`.

    draft   draft/add of up to 8 articles    steps["draft_media_id"], ["draft_for"]
    send    message/mass/sendall             steps["mass_sent"] first, then the msg_id

A digest whose items changed before it was sent (one withdrawn, one revised) gets a new draft;
once a send has gone out, it is only ever repeated with the same `clientmsgid`, which WeChat
refuses as a duplicate (45065) if the first one arrived: followers are never notified twice.
No quota left (45028) defers the digest to the next window (the next day's `digest_at`).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol

from channels.base import SHANGHAI, Digest, Publication, Receipt
from channels.wechat.api import QuotaExhausted, WechatApi, WechatRefused
from channels.wechat.article import build_article, with_images
from channels.wechat.tokens import TokenStore

DIGEST_MAX = 8  # articles in one mass message (one draft)
DUPLICATE = 45065  # clientmsgid already used: an earlier try's send went out
GONE = {40007, 53600}
CLIENTMSGID_MAX = 64  # bytes


class Account(Protocol):
    """What a digest needs of the account's channel (`WechatChannel`)."""

    api: WechatApi
    thumbs: TokenStore
    author: str
    digest_at: time | None

    def source_url(self, pub: Publication) -> str: ...

    async def add_draft(self, articles: list[dict[str, object]]) -> Any: ...


def client_msg_id(key: str) -> str:
    """WeChat's idempotency key for the send (at most 64 bytes): the digest's key, or a hash."""
    if len(key.encode()) <= CLIENTMSGID_MAX:
        return key
    return "gongkai-" + hashlib.sha256(key.encode()).hexdigest()[:48]


def next_window(at: time, now: datetime | None = None) -> float:
    """Seconds until the next day's `at` (Beijing): when a digest without quota tries again."""
    now = (now or datetime.now(UTC)).astimezone(SHANGHAI)
    tomorrow = now.date() + timedelta(days=1)
    return (datetime.combine(tomorrow, at, tzinfo=SHANGHAI) - now).total_seconds()


async def send_digest(channel: Account, digest: Digest) -> Receipt:
    """Draft the day's articles (once) and send them to every follower (once)."""
    steps = dict(digest.steps)

    async def save(**new: Any) -> None:
        steps.update(new)
        await digest.save(dict(steps))

    if not steps.get("mass_sent"):
        keys = [pub.key for pub, _ in digest.entries]
        old = steps.get("draft_media_id")
        if old and steps.get("draft_for") != keys:  # its items changed: a draft of today's
            await _drop_draft(channel, str(old))
            await save(draft_media_id=None, draft_for=None)
        if not steps.get("draft_media_id"):
            media_id = await _add_draft(channel, digest)
            await save(draft_media_id=media_id, draft_for=keys)
        await save(mass_sent=True)
    media_id = str(steps["draft_media_id"])
    msgid = client_msg_id(digest.key)
    try:
        sent = await channel.api.call(
            "message/mass/sendall",
            lambda c: c.message.send_mass_article(media_id, is_to_all=True, client_msg_id=msgid),
        )
        msg_id = str(sent.get("msg_id", ""))
    except WechatRefused as exc:
        if exc.code != DUPLICATE:
            raise
        msg_id = str(steps.get("msg_id") or "")  # an earlier try's send, whose answer was lost
    except QuotaExhausted as exc:  # refused: nothing went out, so it may be merged
        await save(mass_sent=False)
        at = channel.digest_at or time(0, 0)
        wait = next_window(at)
        raise QuotaExhausted(f"{exc}; the digest waits for the next window", wait) from None
    steps["msg_id"] = msg_id
    return Receipt(external_id=msg_id or None, confirmed_at=datetime.now(UTC), steps=steps)


async def _add_draft(channel: Account, digest: Digest) -> str:
    thumb = await channel.thumbs.get()
    articles = []
    for pub, _ in digest.entries:
        body = with_images(pub.body_html, dict(pub.steps.get("images") or {}))
        articles.append(build_article(pub, channel.source_url(pub), channel.author, body))
    drafted = [article.as_draft(thumb) for article in articles]
    added = await channel.add_draft(drafted)
    return str(added["media_id"])


async def _drop_draft(channel: Account, media_id: str) -> None:
    """Delete a draft that will not be sent; one already gone is what we want."""
    try:
        await channel.api.call("draft/delete", lambda c: c.draft.delete(media_id))
    except WechatRefused as exc:
        if exc.code not in GONE:
            raise
