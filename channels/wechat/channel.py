"""Publishing to one official account: images, cover, draft, submit, then confirm.

Publishing (发布) is a chain of remote calls, each saved on the delivery before the next, so a
worker killed anywhere resumes where it stopped (`Publication.steps`):

    images   media/uploadimg per body image      steps["images"]: {source: WeChat URL}
    cover    material/add_material?type=thumb    once per account and cover, cached in Redis
    draft    draft/add                           steps["draft_media_id"]
    submit   freepublish/submit                  steps["submit_sent"], then ["publish_id"]
    confirm  freepublish/get until status 0      the receipt: article_id, article URL, time

A submit whose answer was lost (`submit_sent` without `publish_id`) is never sent again: the
draft is looked up (still there: it was not submitted) and, once consumed, the article is found
among the account's published ones. A revision is a new article (a published one cannot be
edited); once it is live the one it replaces is deleted. A withdrawal deletes the article.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, time
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from channels.base import (
    Digest,
    NotForChannel,
    PermanentError,
    Publication,
    Receipt,
    RetryableError,
    StepStore,
)
from channels.paths import item_file
from channels.wechat.api import WechatApi, WechatRefused, upload
from channels.wechat.article import build_article, image_sources, with_images
from channels.wechat.digest import DIGEST_MAX, send_digest
from channels.wechat.tokens import TokenStore

IMAGE_MAX = 1_048_576  # media/uploadimg: jpg or png under 1 MB
GONE = {40007, 53600}  # freepublish/delete, draft/get: no such article or draft (any longer)
COVER_KEPT = 30 * 86400  # seconds the cover's material id is reused before it is uploaded anew
LOOK_CAP = 300.0  # seconds: the longest wait between two looks at a publish job
STATUS = {
    2: "originality check failed (原创声明失败)",
    3: "publishing failed (发布失败)",
    4: "rejected by review (审核不通过)",
    5: "deleted after publishing (已删除)",
    6: "banned (已封禁)",
}


class WechatChannel:
    """One official account (`wechat` or `wechat:NAME`)."""

    def __init__(
        self,
        name: str,
        api: WechatApi,
        session: aiohttp.ClientSession | None,
        base_url: str,
        cover: bytes,
        author: str = "",
        agencies: tuple[str, ...] = (),
        steps: StepStore | None = None,
        redis: Any = None,
        first_look: float = 3.0,
        digest_at: time | None = None,
    ) -> None:
        self.name = name
        self.api = api
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.cover = cover
        self.author = author
        self.agencies = frozenset(agencies)
        self.step_store = steps
        self.first_look = first_look
        self.digest_at = digest_at  # the followers' daily digest (Beijing time); None: none
        self.digest_max = DIGEST_MAX
        digest = hashlib.sha256(cover).hexdigest()[:20]
        # Uploaded once per account and cover, by one worker; the others wait for its id.
        self.thumbs = TokenStore(api.appid, self._upload_cover, redis, what=f"thumb:{digest}")

    # -- the channel contract ---------------------------------------------------------------

    async def publish(self, pub: Publication) -> Receipt:
        if self.agencies and pub.agency_code not in self.agencies:
            raise NotForChannel(f"{self.name} carries only the items of "
                                f"{', '.join(sorted(self.agencies))}")  # fmt: skip
        steps = dict(pub.steps)
        if steps.get("publish_id"):  # submitted by an earlier try: only confirm it
            return await self.confirm(pub, Receipt(steps=steps))
        body = await self._images(pub, steps)
        if not steps.get("draft_media_id"):
            article = build_article(pub, self.source_url(pub), self.author, body)
            thumb = await self._thumb_media_id()
            draft = await self.add_draft([article.as_draft(thumb)])
            await self._save(pub, steps, draft_media_id=str(draft["media_id"]),
                             complete=article.complete)  # fmt: skip
        if steps.get("submit_sent"):
            found = await self._lost_submit(pub, steps)
            if found is not None:
                return found
        await self._save(pub, steps, submit_sent=True)
        media_id = steps["draft_media_id"]
        sent = await self._call("freepublish/submit", lambda c: c.freepublish.submit(media_id))
        await self._save(pub, steps, publish_id=str(sent["publish_id"]))
        return Receipt(check_after=self.first_look, steps={**steps, "looks": 0})

    async def confirm(self, pub: Publication, receipt: Receipt) -> Receipt:
        steps = dict(receipt.steps)
        publish_id = steps.get("publish_id")
        if not publish_id:
            raise PermanentError("nothing was submitted to confirm")
        job = await self._call("freepublish/get", lambda c: c.freepublish.get(publish_id))
        status = int(job.get("publish_status", -1))
        if status == 0:
            article_id = str(job["article_id"])
            items = (job.get("article_detail") or {}).get("item") or [{}]
            return await self._live(pub, steps, article_id, items[0].get("article_url"))
        if status == 1:  # still publishing: look again later, less and less often
            looks = int(steps.get("looks", 0)) + 1
            wait = min(self.first_look * 2**looks, LOOK_CAP)
            return Receipt(check_after=wait, steps={**steps, "looks": looks})
        what = STATUS.get(status, f"unknown publish_status {status}")
        raise PermanentError(f"WeChat publish job {publish_id}: {what}; "
                             f"fail_idx {job.get('fail_idx')}")  # fmt: skip

    async def withdraw(self, pub: Publication, receipt: Receipt) -> Receipt:
        article_id = receipt.external_id or receipt.steps.get("article_id")
        if article_id:
            await self._delete(str(article_id))
        now = datetime.now(UTC)
        return Receipt(external_id=article_id, url=receipt.url, confirmed_at=now,
                       steps={"deleted": article_id})  # fmt: skip

    async def send_digest(self, digest: Digest) -> Receipt:
        """The day's articles to every follower, as one mass message (`digest.py`)."""
        return await send_digest(self, digest)

    def source_url(self, pub: Publication) -> str:
        """阅读原文: the item's page on the government website (this version's)."""
        return f"{self.base_url}/{item_file(pub.item_id)}?v={pub.version}"

    # -- steps ------------------------------------------------------------------------------

    async def _live(
        self, pub: Publication, steps: dict[str, Any], article_id: str, url: str | None
    ) -> Receipt:
        """Published: take down what this revision replaces, and report it live."""
        steps["article_id"] = article_id
        old = pub.replaces.external_id if pub.replaces is not None else None
        if old and old != article_id and steps.get("replaced") != old:
            await self._delete(old)
            await self._save(pub, steps, article_id=article_id, replaced=old)
        return Receipt(external_id=article_id, url=url, confirmed_at=datetime.now(UTC),
                       steps=steps)  # fmt: skip

    async def _images(self, pub: Publication, steps: dict[str, Any]) -> str:
        """Upload the body's images not uploaded yet; the body with WeChat's URLs."""
        sources = image_sources(pub.body_html)
        if not sources:
            return pub.body_html
        uploaded: dict[str, str] = dict(steps.get("images") or {})
        left_out: list[str] = list(steps.get("images_left_out") or [])
        for src in sources:
            if src in uploaded or src in left_out:
                continue
            found = await self._fetch_image(src)
            if found is None:
                left_out.append(src)
            else:
                uploaded[src] = await self._upload_image(*found)
            await self._save(pub, steps, images=dict(uploaded), images_left_out=list(left_out))
        return with_images(pub.body_html, uploaded)

    async def _upload_image(self, data: bytes, filename: str) -> str:
        url = await self._call(
            "media/uploadimg", lambda c: c.media.upload_image(upload(data, filename))
        )
        return str(url)

    async def _fetch_image(self, src: str) -> tuple[bytes, str] | None:
        """A body image's bytes if WeChat would take it (jpg/png under 1 MB); None if it
        cannot be used (it is then left out with a note); RetryableError if it may be later."""
        url = urljoin(self.base_url + "/", src)
        if urlsplit(url).scheme not in ("http", "https") or self.session is None:
            return None
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=20)) as res:
                if res.status >= 500 or res.status == 429:
                    raise RetryableError(f"image {url}: HTTP {res.status}")
                if res.status != 200:
                    return None
                data = await res.content.read(IMAGE_MAX + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryableError(f"image {url}: {type(exc).__name__}") from None
        if len(data) > IMAGE_MAX:
            return None
        if data.startswith(b"\xff\xd8\xff"):
            return data, "image.jpg"
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return data, "image.png"
        return None

    async def _thumb_media_id(self) -> str:
        """The cover's permanent material, uploaded once per account and cover."""
        return await self.thumbs.get()

    async def _upload_cover(self) -> tuple[str, int]:
        cover = self.cover
        added = await self._call(
            "material/add_material", lambda c: c.material.add("thumb", upload(cover, "cover.jpg"))
        )
        return str(added["media_id"]), COVER_KEPT

    async def add_draft(self, articles: list[dict[str, object]]) -> Any:
        """A draft of `articles` (one, or a digest's); its answer holds the `media_id`."""
        try:
            return await self._call("draft/add", lambda c: c.draft.add(articles))
        except WechatRefused as exc:
            if exc.code != 40007:
                raise
        # The cover material is gone (deleted in 公众平台, or another stand-in): upload it anew.
        await self.thumbs.invalidate(str(articles[0]["thumb_media_id"]))
        raise RetryableError("WeChat draft/add: 40007 the cover material no longer exists; "
                             "it is uploaded again on the next try", 1.0)  # fmt: skip

    async def _lost_submit(self, pub: Publication, steps: dict[str, Any]) -> Receipt | None:
        """An earlier try sent submit and lost the answer. None if the draft is still there
        (it was not submitted); the article's receipt if it was published; else wait."""
        media_id = steps["draft_media_id"]
        try:
            await self._call("draft/get", lambda c: c.draft.get(media_id))
            return None
        except WechatRefused as exc:
            if exc.code not in GONE:
                raise
        source = self.source_url(pub)
        listed = await self._call(
            "freepublish/batchget", lambda c: c.freepublish.batchget(0, 20, 1)
        )
        for entry in listed.get("item") or []:
            for news in (entry.get("content") or {}).get("news_item") or []:
                if news.get("content_source_url") == source:
                    return await self._live(pub, steps, str(entry["article_id"]), news.get("url"))
        raise RetryableError(f"draft {media_id} was submitted by an earlier try whose answer was "
                             "lost; waiting for its article to be listed", 30.0)  # fmt: skip

    async def _delete(self, article_id: str) -> None:
        try:
            await self._call("freepublish/delete",
                             lambda c: c.freepublish.delete(article_id, 0))  # fmt: skip
        except WechatRefused as exc:
            if exc.code not in GONE:  # already gone is what a delete wants
                raise

    async def _call(self, what: str, request: Any) -> Any:
        return await self.api.call(what, request)

    async def _save(self, pub: Publication, steps: dict[str, Any], **new: Any) -> None:
        """Record remote ids on the delivery before the next remote call."""
        steps.update(new)
        if self.step_store is not None:
            await self.step_store.save(pub.key, dict(steps))
