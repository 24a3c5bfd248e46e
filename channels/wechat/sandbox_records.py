"""What the WeChat sandbox stores, and WeChat's rules for it: limits, error codes, content checks.

The records are plain dataclasses the handlers of `channels.wechat.sandbox` mutate in place and
`sandbox_page` renders by attribute; `WxError` is how a handler answers one of WeChat's error
codes (HTTP 200 with `errcode`/`errmsg`). The checks hold no state and touch no request, so a
rule such as "a title is at most 32 characters" lives here once, next to the record it limits.
`Faults` is here too: the switches are a record, checked (`checked_faults`) like the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, get_type_hints

from pydantic import TypeAdapter, ValidationError

from channels.base import SHANGHAI
from channels.wechat import sandbox_page

TOKEN_TTL = 7200  # seconds a token is valid
UPLOADIMG_MAX = 1_048_576  # body images must be smaller than 1 MB
THUMB_MAX = 65_536  # thumb materials: at most 64 KB
IMAGE_MAX = 10 * 1_048_576  # image (and video) materials: at most 10 MB
VOICE_MAX = 2 * 1_048_576
MAX_ARTICLES = 8  # articles in one draft
CLIENTMSGID_TTL = 24 * 3600  # seconds a mass send's clientmsgid stays taken
PUBLISHING = 1  # the one publish_status that is not final
JPEG, PNG = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"
MEDIA_TYPES = {"image", "thumb", "voice", "video"}
TEXT_FIELDS = ("title", "author", "digest", "content", "content_source_url", "thumb_media_id")
NEWS_FIELDS = (*TEXT_FIELDS, "need_open_comment", "only_fans_can_comment")

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40004: "invalid media type",
    40005: "invalid file type",
    40007: "invalid media_id",
    40008: "invalid message type",
    40009: "invalid image size",
    40013: "invalid appid",
    40125: "invalid appsecret",
    40164: "invalid ip {ip}, not in whitelist",
    41005: "media data missing",
    42001: "access_token expired",
    45002: "content size out of limit",
    45003: "title size out of limit",
    45004: "description size out of limit",
    45005: "url size out of limit",
    45008: "article size out of limit",
    45011: "api minute-quota reach limit mustslower retry next minute",
    45028: "has no masssend quota",
    45065: "clientmsgid exist",
    45110: "author size out of limit",
    45166: "invalid content",
    47001: "data format error",
    48001: "api unauthorized",
    53600: "Article ID 无效",
}


class WxError(Exception):
    """A WeChat error answer: `errcode`, its `errmsg`, and any further fields of the answer."""

    def __init__(self, errcode: int, ip: str = "", **extra: object) -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.payload: dict[str, object] = {
            "errcode": errcode,
            "errmsg": ERRMSG[errcode].format(ip=ip),
            **extra,
        }


@dataclass
class Faults:
    """Fault switches; settable from Python and via `POST /sandbox/faults`."""

    busy: int = 0  # the next N API calls (not token) answer -1 "system error"
    rate_limited: int = 0  # the next N API calls answer 45011
    invalid_token: bool = False  # every API call (not token) answers 40001
    token_delay: float = 0.0  # seconds the token endpoint waits before answering
    ip_blocked: bool = False  # token and API calls answer 40164
    statuses: list[int] = field(default_factory=lambda: [PUBLISHING, 0])  # a new job's steps
    push_after: float | None = None  # a job turns final by itself this long after submit
    mass_quota: int = 1  # mass sends per account per Beijing day


_FAULT_TYPES = {name: TypeAdapter(hint) for name, hint in get_type_hints(Faults).items()}


def checked_faults(values: Mapping[str, object]) -> dict[str, Any]:
    """`values` for fields of `Faults`, each strictly of its type; ValueError says what is wrong.

    Strict: `"busy": "3"` (over HTTP, say) is refused, not read as 3.
    """
    unknown = set(values) - set(_FAULT_TYPES)
    if unknown:
        raise ValueError(f"unknown faults: {sorted(unknown)}")
    try:
        new = {k: _FAULT_TYPES[k].validate_python(v, strict=True) for k, v in values.items()}
    except ValidationError as exc:
        raise ValueError(str(exc)) from None
    if any(s not in range(7) for s in new.get("statuses", ())):
        raise ValueError("statuses are publish_status values 0..6")
    return new


@dataclass(frozen=True)
class Call:
    """One `cgi-bin/` request: its endpoint, the account its token (or appid) names, the answer."""

    endpoint: str  # "cgi-bin/draft/add"
    appid: str | None
    errcode: int  # 0 on success


@dataclass(frozen=True)
class Image:
    """A body image uploaded with `media/uploadimg`, served at `url`."""

    url: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Material:
    """A permanent material from `material/add_material` (`type` "thumb", "image", ...)."""

    media_id: str
    type: str
    url: str  # "" for voice and video
    content_type: str
    data: bytes


@dataclass
class NewsItem:
    """One article of a draft, as `draft/add` received it."""

    title: str
    author: str
    digest: str
    content: str
    content_source_url: str
    thumb_media_id: str
    need_open_comment: int = 0
    only_fans_can_comment: int = 0


@dataclass(frozen=True)
class Draft:
    """A draft waiting in the draft box (`draft/add`, not yet submitted or deleted)."""

    media_id: str
    articles: tuple[NewsItem, ...]
    created_at: datetime


@dataclass(kw_only=True)
class Article(NewsItem):
    """A published article: item `idx` (from 1) of the publish job that made `article_id`."""

    article_id: str
    idx: int
    url: str
    published_at: datetime
    deleted: bool = False


@dataclass(frozen=True)
class MassSend:
    """A mass send (群发) that was accepted."""

    msg_id: int
    msg_data_id: int
    media_id: str
    clientmsgid: str | None
    titles: tuple[str, ...]
    sent_at: datetime


@dataclass
class PublishJob:
    """A `freepublish/submit` and where it is along its `statuses`."""

    publish_id: str
    articles: tuple[NewsItem, ...]
    statuses: list[int]
    base_url: str  # of the submit request: the article URLs are built on it
    status: int
    step: int = 0  # the next index into `statuses` a get answers
    final: bool = False
    article_id: str | None = None


@dataclass
class Account:
    """One official account and everything it received."""

    appid: str
    secret: str
    callback_url: str = ""
    callback_token: str = ""
    token: str | None = None
    token_issued: float = 0.0
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # name -> (type, data)
    image_urls: set[str] = field(default_factory=set)  # may appear in article content
    images: list[Image] = field(default_factory=list)
    materials: dict[str, Material] = field(default_factory=dict)
    drafts: dict[str, Draft] = field(default_factory=dict)
    jobs: dict[str, PublishJob] = field(default_factory=dict)
    articles: list[Article] = field(default_factory=list)
    mass_sends: list[MassSend] = field(default_factory=list)

    @property
    def gh_id(self) -> str:
        """The account's original id (ToUserName of pushed events)."""
        return "gh_" + hashlib.sha1(self.appid.encode()).hexdigest()[:12]  # noqa: S324


def image_type(data: bytes) -> str | None:
    """The MIME type by the data's signature (JPEG or PNG, not the file name), else None."""
    if data.startswith(JPEG):
        return "image/jpeg"
    return "image/png" if data.startswith(PNG) else None


def int_or(value: object, default: int) -> int:
    """A JSON field as an int if it reads as one (`"3"` does), else `default`."""
    if isinstance(value, int | float | str):
        with contextlib.suppress(ValueError):
            return int(value)
    return default


def news_item(raw: object) -> NewsItem:
    """One entry of `draft/add`'s `articles`; a missing text field is "" (checked after)."""
    if not isinstance(raw, dict):
        raise WxError(47001)
    text = {name: str(raw.get(name) or "") for name in TEXT_FIELDS}
    return NewsItem(
        **text,
        need_open_comment=int_or(raw.get("need_open_comment"), 0),
        only_fans_can_comment=int_or(raw.get("only_fans_can_comment"), 0),
    )


def check_item(account: Account, item: NewsItem) -> NewsItem:
    """`item` if it is within WeChat's limits, else the first limit's error, in WeChat's order."""
    thumb = account.materials.get(item.thumb_media_id)
    content = item.content
    checks = (
        (not item.title or len(item.title) > 32, 45003),
        (len(item.author) > 16, 45110),
        (len(item.digest) > 128, 45004),
        (not content or len(content) >= 20_000, 45002),  # and so always under WeChat's 1 MB
        (thumb is None or thumb.type not in ("thumb", "image"), 40007),
        (not sandbox_page.img_sources(content) <= account.image_urls, 45166),
        (len(item.content_source_url) > 1024, 45005),
    )
    for failed, errcode in checks:
        if failed:
            raise WxError(errcode)
    return item


def check_mass_send(account: Account, clientmsgid: str | None, now: datetime, quota: int) -> None:
    """Nothing if `account` may mass-send at `now`, else WeChat's refusal.

    45065 (naming the earlier send) if `clientmsgid` was taken within 24 hours; 45028 if the
    account has sent `quota` times this Beijing day.
    """
    for sent in account.mass_sends:
        recent = (now - sent.sent_at).total_seconds() < CLIENTMSGID_TTL
        if clientmsgid is not None and sent.clientmsgid == clientmsgid and recent:
            raise WxError(45065, msg_id=sent.msg_id)
    today = now.astimezone(SHANGHAI).date()
    used = sum(1 for s in account.mass_sends if s.sent_at.astimezone(SHANGHAI).date() == today)
    if used >= quota:
        raise WxError(45028)


def news_json(article: Article, with_content: bool) -> dict[str, object]:
    """An article as `getarticle` and `batchget` show it."""
    news = {k: v for k, v in asdict(article).items() if k in NEWS_FIELDS}
    if not with_content:
        del news["content"]
    return {**news, "url": article.url, "is_deleted": article.deleted}


def new_id() -> str:
    """A new media_id: random, so an id from another sandbox or run is never valid here."""
    return secrets.token_urlsafe(32)
