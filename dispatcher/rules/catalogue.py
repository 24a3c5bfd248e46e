"""The disclosure catalogue: domains, item categories and their structured fields, as data.

The catalogue (国办发〔2017〕97号 二(一)–(二)) lives in `catalogue.json` beside this module so that
adding a category is an edit to data, not code. `load_catalogue` validates a file strictly and
names the file and JSON path of every problem; `validate_fields` checks an item's `fields`
object against its category and reports `(path, message)` pairs such as
`("fields.candidates[0].bid_price", "...")`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

import channels
from dispatcher.errors import ConfigurationError
from dispatcher.rules.limits import DECISIONS, UNIT_NAMES, Publicity, TimeLimit

FIELD_TYPES = ("string", "text", "integer", "decimal", "date", "boolean", "table")
SCALAR_TYPES = FIELD_TYPES[:-1]
PUBLISHER_LABELS = {
    "approver": "审批部门公开",
    "implementer": "实施主体公开",
    "author": "制作机关公开",
}

MAX_STRING = 500
MAX_TEXT = 20_000
MAX_ROWS = 500
_DECIMAL_RE = re.compile(r"[0-9]+(\.[0-9]+)?")  # amounts, areas, rates: never negative
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")

Key = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
Name = Annotated[str, Field(min_length=1)]


class CatalogueError(ConfigurationError):
    """A catalogue file is invalid; the message names the file and the JSON path of each problem."""

    def __init__(self, source: str, problems: Iterable[tuple[str, str]]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(f"{source}: {path}: {msg}" for path, msg in self.problems))


@dataclass(frozen=True)
class FieldSpec:
    """One structured field of a category; a `table` field has scalar `columns`."""

    key: str
    name: str
    type: str
    required: bool
    columns: tuple[FieldSpec, ...] = ()
    withhold: str | None = None  # a withholding basis: withheld unless the editor lists it


@dataclass(frozen=True)
class Category:
    """An item category; `domain` is None for cross-domain categories such as the blacklist."""

    key: str
    name: str
    domain: str | None
    stage: int
    publisher: Literal["approver", "implementer", "author"]
    time_limit: TimeLimit
    default_channels: tuple[str, ...]
    description: str
    fields: tuple[FieldSpec, ...]
    min_publicity: Publicity | None = None

    def field(self, key: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.key == key), None)

    def field_labels(self) -> Mapping[str, str]:
        """Field and column names, flattened: `candidates` and `candidates.rank`."""
        labels: dict[str, str] = {}
        for spec in self.fields:
            labels[spec.key] = spec.name
            labels.update({f"{spec.key}.{col.key}": col.name for col in spec.columns})
        return MappingProxyType(labels)


@dataclass(frozen=True)
class Domain:
    """A domain (领域) with its categories in process order (by stage, then file order)."""

    key: str
    name: str
    categories: Mapping[str, Category]


@dataclass(frozen=True)
class Catalogue:
    """The whole catalogue; cross-domain categories are valid under every domain."""

    domains: Mapping[str, Domain]
    cross_domain: Mapping[str, Category]
    withholding_bases: Mapping[str, str]
    version: int = 2
    _labels: dict[tuple[str, str], Mapping[str, Any]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def category(self, domain: str, key: str) -> Category | None:
        """The category `key` under `domain`, or None if either is unknown."""
        d = self.domains.get(domain)
        if d is None:
            return None
        return d.categories.get(key) or self.cross_domain.get(key)

    def find(self, name: str) -> Category:
        """The category `name` ("bid_candidates", or "land/transfer_notice" where a key is in
        several domains); ValueError naming the choices if it is unknown or ambiguous."""
        domain, _, key = name.rpartition("/")
        found = [
            c for d in self.domains.values() if domain in ("", d.key)
            for c in d.categories.values() if c.key == key
        ] + [c for c in self.cross_domain.values() if c.key == key]  # fmt: skip
        if len(found) == 1:
            return found[0]
        if not found:
            raise ValueError(f"no category {name!r} (gongkai catalogue lists them)")
        choices = ", ".join(f"{c.domain}/{c.key}" for c in found)
        raise ValueError(f"category {key!r} is in several domains: name one of {choices}")

    def labels(self, domain: str, category: str) -> Mapping[str, Any]:
        """The Chinese names a channel shows for an item of `domain`/`category`.

        Keys match `Publication`'s label fields. Unknown keys give empty labels, so a channel
        falls back to the keys. Computed once per pair (a claim asks for every delivery).
        """
        found = self._labels.get((domain, category))
        if found is None:
            d = self.domains.get(domain)
            c = self.category(domain, category)
            found = MappingProxyType(
                {
                    "domain_name": d.name if d else "",
                    "category_name": c.name if c else "",
                    "stage": c.stage if c else 0,
                    "field_labels": c.field_labels() if c else MappingProxyType({}),
                }
            )
            self._labels[(domain, category)] = found
        return found

    def outline(self) -> list[dict[str, Any]]:
        """The domains with their categories in process order: what the website's home and
        project pages show (handed to the channels in their settings)."""
        return [
            {
                "key": d.key,
                "name": d.name,
                "categories": [
                    {"key": c.key, "name": c.name, "stage": c.stage} for c in d.categories.values()
                ],
            }
            for d in self.domains.values()
        ]

    def to_json(self) -> dict[str, Any]:
        """The catalogue as served by GET /api/v1/catalogue."""
        return {
            "version": self.version,
            "domains": [
                {
                    "key": d.key,
                    "name": d.name,
                    "categories": [_category_json(c) for c in d.categories.values()],
                }
                for d in self.domains.values()
            ],
            "cross_domain": [_category_json(c) for c in self.cross_domain.values()],
            "withholding_bases": [{"key": k, "name": v} for k, v in self.withholding_bases.items()],
        }


def _field_json(f: FieldSpec) -> dict[str, Any]:
    cols = [_field_json(c) for c in f.columns]
    found = {"key": f.key, "name": f.name, "type": f.type, "required": f.required, "columns": cols}
    return found | ({"withhold": f.withhold} if f.withhold else {})


def describe_limit(c: Category) -> str:
    """The category's time rule in Chinese: "自收到评标报告之日起3日内" (and the event's name)."""
    event = c.field(c.time_limit.before) if c.time_limit.before else None
    return c.time_limit.describe(event.name if event else "")


def _category_json(c: Category) -> dict[str, Any]:
    deadline = {
        **c.time_limit.to_json(),
        "text": describe_limit(c),
        "administrative_decisions": DECISIONS.to_json(),
    }
    head = {"key": c.key, "name": c.name, "stage": c.stage, "publisher": c.publisher}
    return head | {
        "deadline": deadline,
        "min_publicity": c.min_publicity.to_json() if c.min_publicity else None,
        "default_channels": list(c.default_channels),
        "description": c.description,
        "fields": [_field_json(f) for f in c.fields],
    }


# --- the file format (pydantic checks shape and types; _check_file checks the rest) ---


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _FieldModel(_Strict):
    key: Key
    name: Name
    type: Literal["string", "text", "integer", "decimal", "date", "boolean", "table"]
    required: bool = False
    columns: list[_FieldModel] = []
    withhold: Key | None = None


class _TimeLimitModel(_Strict):
    kind: Literal["deadline", "lead"]
    count: int = Field(ge=1, le=366)
    unit: Literal["working_days", "days"]
    start: str = Field(default="", alias="from")
    before: str = ""
    basis: Name


class _PublicityModel(_Strict):
    count: int = Field(ge=1, le=366)
    unit: Literal["working_days", "days"]
    start: Key
    end: Key
    basis: Name


class _CategoryModel(_Strict):
    key: Key
    name: Name
    stage: int = Field(ge=1)
    publisher: Literal["approver", "implementer", "author"]
    time_limit: _TimeLimitModel
    min_publicity: _PublicityModel | None = None
    default_channels: list[Key] = Field(min_length=1)
    description: str = ""
    fields: list[_FieldModel] = []


class _DomainModel(_Strict):
    key: Key
    name: Name
    categories: list[_CategoryModel] = Field(min_length=1)


class _FileModel(_Strict):
    version: Literal[2]
    withholding_bases: dict[Key, Name]
    domains: list[_DomainModel] = Field(min_length=1)
    cross_domain: list[_CategoryModel] = []


def _json_path(loc: Iterable[int | str]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def _duplicates(keys: Iterable[str], path: str) -> list[tuple[str, str]]:
    seen: set[str] = set()
    out = []
    for i, k in enumerate(keys):
        if k in seen:
            out.append((f"{path}[{i}].key", f"duplicate key {k!r}"))
        seen.add(k)
    return out


def _check_fields(fields: list[_FieldModel], path: str, *, in_table: bool) -> list[tuple[str, str]]:
    problems = _duplicates((f.key for f in fields), path)
    for i, f in enumerate(fields):
        here = f"{path}[{i}]"
        if in_table and f.type == "table":
            problems.append((f"{here}.type", "a table column must be a scalar type, not 'table'"))
        elif f.type == "table" and not f.columns:
            problems.append((f"{here}.columns", "a table field needs at least one column"))
        elif f.type != "table" and f.columns:
            problems.append(
                (f"{here}.columns", f"only a table field has columns (type is {f.type!r})")
            )
        problems += _check_fields(f.columns, f"{here}.columns", in_table=True)
    return problems


def _check_category(
    c: _CategoryModel, path: str, kinds: Collection[str], bases: Collection[str]
) -> list[tuple[str, str]]:
    problems = []
    where = f"{path}.default_channels"
    for i, kind in enumerate(c.default_channels):
        if kind not in kinds:
            problems.append(
                (f"{where}[{i}]", f"unknown channel {kind!r} (one of: {', '.join(kinds)})")
            )
    if channels.FIRST_PLATFORM not in c.default_channels:
        problems.append((where, f"must include {channels.FIRST_PLATFORM!r} (the first platform)"))
    if len(set(c.default_channels)) != len(c.default_channels):
        problems.append((where, "duplicate channel"))
    problems += _check_timing(c, path)
    for i, f in enumerate(c.fields):
        for j, col in enumerate([f, *f.columns]):
            here = f"{path}.fields[{i}]" + (f".columns[{j - 1}]" if j else "")
            if col.withhold is not None and col.withhold not in bases:
                problems.append((f"{here}.withhold", f"unknown withholding basis {col.withhold!r}"))
    return problems + _check_fields(c.fields, f"{path}.fields", in_table=False)


def _check_timing(c: _CategoryModel, path: str) -> list[tuple[str, str]]:
    """A lead time names a required date field; a deadline says what starts its clock; a
    publicity period names two date fields."""
    dates = {f.key: f for f in c.fields if f.type == "date"}
    limit, here = c.time_limit, f"{path}.time_limit"
    problems = []
    if limit.kind == "lead":
        event = dates.get(limit.before)
        if event is None or not event.required:
            problems.append((f"{here}.before", "must name a required date field of the category"))
        if limit.unit != "days":
            problems.append((f"{here}.unit", "a lead time is counted in days"))
        if limit.start:
            problems.append((f"{here}.from", "a lead time has no start ('before' names the event)"))
    else:
        if not limit.start.strip():
            problems.append((f"{here}.from", "say what starts the clock, e.g. 收到评标报告之日"))
        if limit.before:
            problems.append((f"{here}.before", "only a lead time names an event"))
    if c.min_publicity is not None:
        for end in ("start", "end"):
            key = getattr(c.min_publicity, end)
            if key not in dates:
                problems.append((f"{path}.min_publicity.{end}", f"{key!r} is not a date field"))
    return problems


def _check_file(m: _FileModel, kinds: Collection[str]) -> list[tuple[str, str]]:
    bases = set(m.withholding_bases)
    problems = _duplicates((d.key for d in m.domains), "$.domains")
    problems += _duplicates((c.key for c in m.cross_domain), "$.cross_domain")
    cross_keys = {c.key for c in m.cross_domain}
    for i, c in enumerate(m.cross_domain):
        problems += _check_category(c, f"$.cross_domain[{i}]", kinds, bases)
    for i, d in enumerate(m.domains):
        path = f"$.domains[{i}].categories"
        problems += _duplicates((c.key for c in d.categories), path)
        for j, c in enumerate(d.categories):
            if c.key in cross_keys:
                problems.append(
                    (f"{path}[{j}].key", f"key {c.key!r} is also a cross-domain category")
                )
            problems += _check_category(c, f"{path}[{j}]", kinds, bases)
    return problems


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"duplicate JSON object key {dup!r}")
    return dict(pairs)


def _build_category(c: _CategoryModel, domain: str | None) -> Category:
    def spec(f: _FieldModel) -> FieldSpec:
        columns = tuple(spec(col) for col in f.columns)
        return FieldSpec(f.key, f.name, f.type, f.required, columns, f.withhold)

    rest = c.model_dump(exclude={"fields", "default_channels", "time_limit", "min_publicity"})
    limit = TimeLimit(**c.time_limit.model_dump())
    publicity = Publicity(**c.min_publicity.model_dump()) if c.min_publicity else None
    fields = tuple(spec(f) for f in c.fields)
    return Category(
        domain=domain, default_channels=tuple(c.default_channels), fields=fields,
        time_limit=limit, min_publicity=publicity, **rest,
    )  # fmt: skip


def _by_stage(cats: list[_CategoryModel], domain: str | None) -> Mapping[str, Category]:
    ordered = sorted(cats, key=lambda c: c.stage)  # stable: equal stages keep file order
    return MappingProxyType({c.key: _build_category(c, domain) for c in ordered})


def load_catalogue(path: str | os.PathLike[str] | None = None) -> Catalogue:
    """Load and validate a catalogue file; None means the packaged `rules/catalogue.json`.

    Default channels must be kinds of the channel registry.
    """
    kinds = tuple(channels.REGISTRY)
    src: Traversable = (
        resources.files("dispatcher.rules") / "catalogue.json" if path is None else Path(path)
    )
    try:
        data = json.loads(src.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys)
        m = _FileModel.model_validate(data)
    except ValidationError as e:
        # model_type messages name our private classes; say what the file should hold instead
        msgs = [
            (x["loc"], "Input should be an object" if x["type"] == "model_type" else x["msg"])
            for x in e.errors()
        ]
        raise CatalogueError(str(src), [(_json_path(loc), msg) for loc, msg in msgs]) from e
    except json.JSONDecodeError as e:
        msg = f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
        raise CatalogueError(str(src), [("$", msg)]) from e
    except (OSError, ValueError) as e:  # unreadable, not UTF-8, or a duplicate JSON key
        raise CatalogueError(str(src), [("$", str(e))]) from e
    problems = _check_file(m, kinds)
    if problems:
        raise CatalogueError(str(src), problems)
    domains = {d.key: Domain(d.key, d.name, _by_stage(d.categories, d.key)) for d in m.domains}
    return Catalogue(
        domains=MappingProxyType(domains),
        cross_domain=_by_stage(m.cross_domain, None),
        withholding_bases=MappingProxyType(dict(m.withholding_bases)),
        version=m.version,
    )


# --- item field validation ---


def validate_fields(category: Category, fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Check an item's `fields` against its category; one (path, message) per problem, [] if valid.

    A null value counts as absent. A required table needs at least one row.
    """
    if not isinstance(fields, Mapping):
        return [("fields", "must be an object")]
    return _check_object(category.fields, fields, "fields")


def _check_object(
    specs: tuple[FieldSpec, ...], obj: Mapping[str, Any], prefix: str
) -> list[tuple[str, str]]:
    by_key = {s.key: s for s in specs}
    problems = [(f"{prefix}.{k}", "unknown field") for k in obj if k not in by_key]
    for spec in specs:
        value = obj.get(spec.key)
        path = f"{prefix}.{spec.key}"
        if value is None:
            if spec.required:
                problems.append((path, "required"))
        else:
            problems += _check_value(spec, value, path)
    return problems


def _check_value(spec: FieldSpec, value: Any, path: str) -> list[tuple[str, str]]:
    if spec.type == "table":
        return _check_table(spec, value, path)
    message = _SCALAR_CHECKS[spec.type](value)
    return [(path, message)] if message else []


def _check_table(spec: FieldSpec, value: Any, path: str) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        return [(path, "must be a list of rows")]
    if len(value) > MAX_ROWS:
        return [(path, f"at most {MAX_ROWS} rows")]
    if spec.required and not value:
        return [(path, "required: at least one row")]
    problems: list[tuple[str, str]] = []
    for i, row in enumerate(value):
        if isinstance(row, Mapping):
            problems += _check_object(spec.columns, row, f"{path}[{i}]")
        else:
            problems.append((f"{path}[{i}]", "each row must be an object"))
    return problems


def _check_str(value: Any, limit: int, allowed: str) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > limit:
        return f"at most {limit} characters"
    if "\n" not in allowed and any(ch in _LINE_BREAKS for ch in value):
        return "must be a single line"
    bad = [ch for ch in value if ch not in allowed and unicodedata.category(ch) in ("Cc", "Cs")]
    return f"must not contain control character U+{ord(bad[0]):04X}" if bad else None


def _check_integer(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be an integer"
    return None if -(2**63) <= value < 2**63 else "integer out of range"


def _check_decimal(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return 'must be a decimal string such as "12345678.00", not a number'
    if isinstance(value, str) and value.startswith("-"):
        return "must not be negative"
    if not isinstance(value, str) or len(value) > 40 or not _DECIMAL_RE.fullmatch(value):
        return 'must be a decimal string such as "12345678.00"'
    return None


def _check_date(value: Any) -> str | None:
    if not (isinstance(value, str) and _DATE_RE.fullmatch(value)):
        return "must be a date YYYY-MM-DD"
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return "not a valid calendar date"
    return None


_SCALAR_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "string": lambda v: _check_str(v, MAX_STRING, ""),
    "text": lambda v: _check_str(v, MAX_TEXT, "\n\t"),
    "integer": _check_integer,
    "decimal": _check_decimal,
    "date": _check_date,
    "boolean": lambda v: None if isinstance(v, bool) else "must be true or false",
}


def format_catalogue(cat: Catalogue) -> str:
    """Human-readable listing for `gongkai catalogue`."""
    lines: list[str] = []
    sections = [(f"{d.key}  {d.name}", d.categories) for d in cat.domains.values()]
    sections.append(("cross_domain  跨领域（所有领域均可使用）", cat.cross_domain))
    for title, categories in sections:
        lines.append(title)
        for c in categories.values():
            lines.append(
                f"  {c.stage:>2}. {c.key}  {c.name}  {PUBLISHER_LABELS[c.publisher]}"
                f"  渠道: {', '.join(c.default_channels)}"
            )
            lines.append(f"        时限: {describe_limit(c)}（{c.time_limit.basis}）")
            if c.min_publicity is not None:
                p = c.min_publicity
                amount = f"{p.count}{UNIT_NAMES[p.unit]}"
                lines.append(f"        公示期: 不少于{amount}（{p.basis}）")
            for f in c.fields:
                mark = "*" if f.required else ""
                cols = f"（{'、'.join(col.name for col in f.columns)}）" if f.columns else ""
                lines.append(f"        {f.key}{mark}  {f.name}{cols}  [{f.type}]")
        lines.append("")
    lines.append("withholding bases  不予公开依据")
    lines += [f"  {k}  {v}" for k, v in cat.withholding_bases.items()]
    lines.append("")
    lines.append(
        f"* required field; 行政许可、行政处罚决定{DECISIONS.count}个工作日内公开"
        f"（{DECISIONS.basis}）, or sooner where the category's rule is sooner"
    )
    return "\n".join(lines) + "\n"
