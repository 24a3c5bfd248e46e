"""Intake: turn submitted item JSON into a version ready to store, or a list of field errors.

Order matters: state secrets are refused before anything else is looked at; the structured fields
are checked against the catalogue on the full document; only then are withheld parts removed, so
they never reach storage, the ledger or any response. The body is sanitized to an allow-list with
nh3 (the Ammonia sanitizer); the title and summary are plain text and escaped wherever shown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import nh3
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from channels import FIRST_PLATFORM
from channels.base import SHANGHAI
from channels.registry import split_name
from dispatcher.errors import FieldErrors, InputError, PathError
from dispatcher.rules import limits
from dispatcher.rules.catalogue import Category, describe_limit, validate_fields
from dispatcher.rules.codes import CREDIT_CODE_PATTERN, PROJECT_CODE_PATTERN, REGION_CODE_PATTERN
from dispatcher.rules.deadlines import on_time, today
from dispatcher.rules.origins import image_origin
from dispatcher.rules.permissions import PUBLISHER_FIELDS, check_publisher, publisher_field
from dispatcher.rules.rulebook import Rules
from dispatcher.rules.text import json_problems, line_problem, nfc
from dispatcher.rules.withholding import WITHHOLDABLE_ROOTS, parse_path, remove_path

EARLIEST = date(2000, 1, 1)  # no disclosure item is formed before this
SCHEDULE_AHEAD = timedelta(days=366)  # the furthest ahead a release may be scheduled


def _one_line(value: str) -> str:
    problem = line_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Line = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_one_line)]
CreditCode = Annotated[str, StringConstraints(pattern=CREDIT_CODE_PATTERN)]
ProjectCode = Annotated[str, StringConstraints(pattern=PROJECT_CODE_PATTERN)]

_BODY_TAGS = {
    "p", "br", "h2", "h3", "h4", "h5", "h6", "strong", "b", "em", "i", "u", "s", "sub", "sup",
    "ul", "ol", "li", "dl", "dt", "dd", "blockquote", "pre", "code", "hr", "span", "div",
    "table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td", "col", "colgroup",
    "a", "img", "figure", "figcaption",
}  # fmt: skip
_BODY_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start"},
}


class Withheld(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    field: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    basis: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ItemIn(BaseModel):
    """A disclosure item as editors submit it (DESIGN.md, "The item as JSON")."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Item")

    domain: str
    category: str
    title: Annotated[Line, Field(min_length=1, max_length=300)]
    summary: Annotated[str, Field(max_length=2000)] = ""
    body_html: Annotated[str, Field(max_length=500_000)] = ""
    formed_on: date
    decision: Literal["administrative_permit", "administrative_penalty"] | None = None
    approving_agency: CreditCode | None = None
    implementing_agency: CreditCode | None = None
    authoring_agency: CreditCode | None = None
    project_code: ProjectCode | None = None
    region: Annotated[str, StringConstraints(pattern=REGION_CODE_PATTERN)]
    document_number: Annotated[Line, Field(max_length=200)] | None = None
    keywords: Annotated[
        list[Annotated[Line, Field(min_length=1, max_length=50)]], Field(max_length=20)
    ] = []
    validity: Literal["valid", "repealed", "expired"] = "valid"
    fields: dict[str, Any] = {}
    withheld: Annotated[list[Withheld], Field(max_length=100)] = []
    secrecy: Literal["none", "state_secret"] = "none"
    channels: Annotated[list[str], Field(min_length=1, max_length=20)] | None = None
    publish_at: AwareDatetime | None = None
    late_reason: Annotated[str, Field(max_length=2000)] | None = None

    @field_validator("formed_on")
    @classmethod
    def _formed_in_range(cls, value: date) -> date:
        if value < EARLIEST:
            raise ValueError(f"lies before {EARLIEST}: no item here is that old")
        return value

    @field_validator("publish_at")
    @classmethod
    def _release_in_range(cls, value: datetime | None) -> datetime | None:
        return None if value is None else sane_time(value, "a release")


def sane_time(value: datetime, what: str, *, ahead: bool = True) -> datetime:
    """`value` if it is from 2000 on and (`ahead`) at most a year from now; ValueError
    otherwise, also for an offset that takes it out of the calendar."""
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("is outside the calendar with that offset") from None
    if utc < datetime.combine(EARLIEST, datetime.min.time(), UTC):
        raise ValueError(f"lies before {EARLIEST}")
    if ahead and utc > datetime.now(UTC) + SCHEDULE_AHEAD:
        raise ValueError(f"{what} cannot be more than a year ahead")
    return value


class RevisionIn(BaseModel):
    """A revision: a change note, the change date, and the item fields that change."""

    model_config = ConfigDict(extra="allow", strict=True, title="Revision")

    change_note: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
    ]
    changed_on: date | None = None


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, title="Withdrawal")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    # The day the information changed (an administrative penalty decision changed or revoked:
    # the withdrawal is due within 3 working days of it, 行政处罚法 art. 48); default today.
    changed_on: date | None = None


@dataclass
class Draft:
    """A validated item version, withheld parts removed, ready to store."""

    category: Category
    values: dict[str, Any] = field(default_factory=dict)


def pydantic_errors(exc: ValidationError) -> FieldErrors:
    out: FieldErrors = []
    for err in exc.errors():
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        out.append((path or "(body)", err["msg"]))
    return out


def parse_json(raw: bytes | str) -> dict[str, Any]:
    """Decode a JSON object, or raise InputError naming the problem."""
    try:
        data = json.loads(raw, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except RecursionError:
        raise InputError([("(body)", "nested too deeply")]) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError([("(body)", f"not valid JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise InputError([("(body)", "expected a JSON object")])
    problems = json_problems(data)
    if problems:
        raise InputError(problems)
    return data


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"the key {key!r} appears twice in one object")
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def refuse_state_secret(data: dict[str, Any]) -> None:
    if data.get("secrecy") == "state_secret":
        raise InputError([("secrecy", "state secrets are never published; nothing was stored")])


def sanitize_body(html: str, image_hosts: frozenset[str] = frozenset()) -> str:
    """The body cleaned to an allow-list: links kept, marked `nofollow` and opening no window
    handle; an image from a host not in `image_hosts` loses its source (its alt text stays):
    a remote image would tell a third party who reads the page."""

    def keep(tag: str, attribute: str, value: str) -> str | None:
        if tag == "img" and attribute == "src":
            parts = urlsplit(value)
            if (parts.scheme or parts.netloc) and image_origin(value) not in image_hosts:
                return None
        return value

    return nh3.clean(
        html,
        tags=_BODY_TAGS,
        attributes=_BODY_ATTRIBUTES,
        attribute_filter=keep,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def check_item(
    data: dict[str, Any], rules: Rules, agency_code: str, changed_on: date | None = None
) -> Draft:
    """Validate a decoded item for the submitting agency; raise on any problem.

    The statutory clock starts at `formed_on`, or at `changed_on` for a revision.
    """
    refuse_state_secret(data)
    problems = json_problems(data)
    if problems:
        raise InputError(problems)
    data = _withheld_by_default(nfc(data), rules)
    try:
        item = ItemIn.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        raise InputError(pydantic_errors(exc)) from None
    category = rules.catalogue.category(item.domain, item.category)
    errors: FieldErrors = []
    if item.domain not in rules.catalogue.domains:
        errors.append(("domain", f"unknown domain {item.domain!r}"))
    elif category is None:
        errors.append(("category", f"unknown category {item.category!r} in {item.domain}"))
    if item.formed_on > today():
        errors.append(("formed_on", "lies in the future"))
    if category is not None:
        errors += validate_fields(category, item.fields)
        errors += _publisher_errors(item, category)
    errors += _withheld_errors(item, data, rules)
    channels, channel_errors = _channels(item, category, rules)
    errors += channel_errors
    if errors or category is None:
        raise InputError(errors)
    named = {key: getattr(item, key) for key in PUBLISHER_FIELDS.values()}
    check_publisher(category, named, agency_code)
    values = _version_values(item, data, category, channels, rules, changed_on or item.formed_on)
    return Draft(category, values)


def _publisher_errors(item: ItemIn, category: Category) -> FieldErrors:
    key = publisher_field(category)
    if getattr(item, key) is None:
        body = key.removesuffix("_agency")
        return [(key, f"{category.name} is published by the {body} body: name it")]
    return []


def _withheld_errors(item: ItemIn, data: dict[str, Any], rules: Rules) -> FieldErrors:
    errors: FieldErrors = []
    seen: set[str] = set()
    for i, entry in enumerate(item.withheld):
        where = f"withheld[{i}]"
        if entry.basis not in rules.catalogue.withholding_bases:
            known = ", ".join(rules.catalogue.withholding_bases)
            errors.append((f"{where}.basis", f"unknown basis {entry.basis!r} (one of: {known})"))
        try:
            path = parse_path(entry.field)
        except PathError as exc:
            errors.append((f"{where}.field", str(exc)))
            continue
        if path[0] not in WITHHOLDABLE_ROOTS:
            roots = ", ".join(WITHHOLDABLE_ROOTS)
            errors.append((f"{where}.field", f"only parts of {roots} can be withheld"))
        elif entry.field in seen:
            errors.append((f"{where}.field", "listed twice"))
        else:
            try:
                remove_path(json.loads(json.dumps(data)), path)
            except PathError as exc:
                errors.append((f"{where}.field", str(exc)))
        seen.add(entry.field)
    return errors


def _channels(
    item: ItemIn, category: Category | None, rules: Rules
) -> tuple[list[str], FieldErrors]:
    enabled = rules.enabled_channels
    if item.channels is None:  # the category's kinds: "media" means every enabled outlet
        defaults = category.default_channels if category else (FIRST_PLATFORM,)
        return [c for c in enabled if split_name(c)[0] in defaults], []
    errors: FieldErrors = []
    for i, name in enumerate(item.channels):
        if name not in enabled:
            errors.append((f"channels[{i}]", f"channel {name!r} is not enabled here"))
    if FIRST_PLATFORM not in item.channels:
        errors.append(("channels", "the government website (first platform) cannot be left out"))
    if len(set(item.channels)) != len(item.channels):
        errors.append(("channels", "a channel is listed twice"))
    return [c for c in enabled if c in item.channels], errors


def _version_values(
    item: ItemIn,
    data: dict[str, Any],
    category: Category,
    channels: list[str],
    rules: Rules,
    start: date,
) -> dict[str, Any]:
    public = json.loads(json.dumps(data))
    withheld = []
    for entry in item.withheld:
        remove_path(public, parse_path(entry.field))
        name = rules.catalogue.withholding_bases[entry.basis]
        withheld.append({"field": entry.field, "basis": entry.basis, "basis_name": name})

    def kept(key: str, value: Any, empty: Any) -> Any:
        return value if key in public else empty

    values = {
        "title": item.title,
        "summary": kept("summary", item.summary, ""),
        "body_html": sanitize_body(kept("body_html", item.body_html, ""), rules.image_hosts),
        "fields": kept("fields", public.get("fields"), {}),
        "withheld": withheld,
        "formed_on": item.formed_on,
        "decision": item.decision,
        "approving_agency": item.approving_agency,
        "implementing_agency": item.implementing_agency,
        "authoring_agency": item.authoring_agency,
        "project_code": item.project_code,
        "region": item.region,
        "document_number": kept("document_number", item.document_number, None),
        "keywords": kept("keywords", item.keywords, []),
        "validity": item.validity,
        "channels": channels,
        "publish_at": item.publish_at,
        "late_reason": (item.late_reason or "").strip() or None,
    }
    found = _due(item, category, rules, start)
    values["deadline"], values["deadline_provisional"] = found.date, found.provisional
    values["deadline_rule"] = found.to_json()
    if values["late_reason"] is None:
        _check_timing(item, category, rules, found)
    return values


def _due(item: ItemIn, category: Category, rules: Rules, start: date) -> limits.Due:
    """The version's deadline by its category's rule (a lead time: before the event's date)."""
    rule = category.time_limit
    event = item.fields.get(rule.before) if rule.kind == "lead" else None
    when = date.fromisoformat(event) if isinstance(event, str) else None
    return limits.due(rules.calendar, rule, start, item.decision, when)


def _release_day(item: ItemIn) -> date:
    """The day the version goes out: its `publish_at` (Beijing), or today (at approval)."""
    if item.publish_at is None:
        return today()
    return item.publish_at.astimezone(SHANGHAI).date()


def _check_timing(item: ItemIn, category: Category, rules: Rules, found: limits.Due) -> None:
    """Refuse, unless a `late_reason` says why, a release after the deadline, a notice that
    cannot precede its event by the lead time, or a publicity period under the minimum."""
    reason = "state the reason in late_reason (it is recorded and the audit shows the item late)"
    rule = found.rule
    if rule.kind == "lead" and _release_day(item) > found.date:
        raise InputError([("late_reason", f"{category.name} must be published "
                           f"{describe_limit(category)} ({found.start}), by {found.date} "
                           f"({rule.basis}): {reason}")])  # fmt: skip
    if rule.kind == "deadline" and on_time(item.publish_at, found.date) is False:
        raise InputError([("late_reason", f"publish_at is after the statutory deadline "
                           f"{found.date} ({rule.basis}): {reason}")])  # fmt: skip
    publicity = category.min_publicity
    if publicity is None:
        return
    first, last = item.fields.get(publicity.start), item.fields.get(publicity.end)
    if not (isinstance(first, str) and isinstance(last, str)):
        return
    shortest = limits.shortest_end(rules.calendar, publicity, date.fromisoformat(first))
    if date.fromisoformat(last) < shortest:
        amount = f"{publicity.count}{limits.UNIT_NAMES[publicity.unit]}"
        raise InputError([(f"fields.{publicity.end}", f"the publicity period (公示期) must be at "
                           f"least {amount} ({publicity.basis}): end it on {shortest} or later, "
                           f"or {reason}")])  # fmt: skip


def _withheld_by_default(data: dict[str, Any], rules: Rules) -> dict[str, Any]:
    """The item with the category's personal fields (`withhold` in the catalogue) withheld on
    their basis where the editor did not list them: a phone number is never published by
    mistake."""
    domain, key, fields = data.get("domain"), data.get("category"), data.get("fields")
    listed = data.get("withheld", [])
    if not (isinstance(domain, str) and isinstance(key, str) and isinstance(fields, dict)):
        return data
    category = rules.catalogue.category(domain, key)
    if category is None or not isinstance(listed, list):
        return data
    named = {w.get("field") for w in listed if isinstance(w, dict)}
    extra = []
    for spec in category.fields:
        value = fields.get(spec.key)
        if spec.withhold and value is not None:
            extra.append((f"fields.{spec.key}", spec.withhold))
        rows = value if isinstance(value, list) else []
        for col in spec.columns:
            for i, row in enumerate(rows):
                if col.withhold and isinstance(row, dict) and row.get(col.key) is not None:
                    extra.append((f"fields.{spec.key}[{i}].{col.key}", col.withhold))
    added = [{"field": path, "basis": basis} for path, basis in extra if path not in named]
    return {**data, "withheld": [*listed, *added]} if added else data
