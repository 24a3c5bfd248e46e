"""The timeliness audit's rows: every item version with its deadline, the rule behind it, when
each channel really published it, the working days that took, and the verdict (`verdicts.py`).

Which versions: every original and revision (submitted ones too: an item waiting for approval
near its deadline is what an auditor wants to see), and the withdrawal of an administrative
penalty decision (3 working days). A version is judged by its own website publication, or, when
a later version went live first (a correction approved before it was published), by that one:
the information was disclosed, corrected. Rows come in (item, version) order, by keyset pages
(`audit_query` reads them); `period` filters on the deadline day. Each row says whether its
website time matches the time its ledger event recorded (`ledger`: "ok", "mismatch",
"missing").
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from channels import FIRST_PLATFORM
from dispatcher.errors import PermissionDenied
from dispatcher.items.audit_query import (
    SCAN,
    AuditQuery,
    VersionRow,
    Website,
    channel_times,
    later_publications,
    ledger_state,
    own_website,
    page_after,
    versions,
)
from dispatcher.rules.catalogue import Catalogue
from dispatcher.rules.limits import shortest_end
from dispatcher.rules.permissions import Actor, require
from dispatcher.rules.states import Action, DeliveryStatus, Role, VersionKind
from dispatcher.rules.verdicts import (
    Verdict,
    WorkdayIndex,
    clock_start,
    judge,
    penalty_rule_json,
    penalty_withdrawal_due,
)
from dispatcher.storage.models import deliveries, item_versions, items

EVERY_AGENCY = (Role.AUDITOR, Role.ADMIN)  # 监督检查: every agency; others their own
_TURN = 100  # rows judged between turns of the event loop while the next page is read
_RULES_CACHED = 20_000  # distinct stored rules decoded once each (they repeat per day and rule)


def scope(actor: Actor, agency: str | None) -> str | None:
    """The agency the actor may audit: any (None: all) for an auditor, else only their own."""
    require(actor, "read")
    if actor.role in EVERY_AGENCY:
        return agency
    if agency is not None and agency != actor.agency_code:
        raise PermissionDenied("an editor or approver audits their own agency only")
    return actor.agency_code


class Judged(NamedTuple):
    """A version judged, in Python values: `to_json` makes the API's row of it,
    `audit_export.cells` the CSV's and the table's."""

    row: VersionRow
    start: date | None  # the day the clock started (None: a lead time)
    deadline: date
    provisional: bool
    rule: Any  # the stored rule (JSON), shared between rows: read only
    delivery: Website | None  # the website publication judged
    verdict: Verdict
    ledger: str | None  # "ok", "mismatch", "missing"; None when not published
    publicity: dict[str, Any] | None


def to_json(j: Judged) -> dict[str, Any]:
    """The API's row of a judged version (times in ISO 8601, UTC)."""
    r, delivery, verdict = j.row, j.delivery, j.verdict
    return {
        "item_id": r.item_id, "version": r.version, "kind": r.kind, "status": r.status,
        "agency": r.agency_code, "agency_name": r.agency_name, "domain": r.domain,
        "category": r.category, "index_no": r.index_no, "title": r.title,
        "decision": r.decision, "start": _iso(j.start), "deadline": j.deadline.isoformat(),
        "deadline_provisional": j.provisional, "rule": j.rule,
        "published_at": _iso(delivery.confirmed_at) if delivery is not None else None,
        "published_version": delivery.version if delivery is not None else None,
        "channels": channel_times(r.channels),
        "working_days_taken": verdict.taken, "verdict": verdict.verdict,
        "late_by": verdict.late_by, "due_in": verdict.due_in, "late_reason": r.late_reason,
        "ledger": j.ledger, "publicity": j.publicity,
    }  # fmt: skip


class Auditor:
    """Judges versions on one calendar as of `today` (Beijing); with the catalogue, also their
    publicity periods (公示期) against the category's minimum."""

    def __init__(
        self, index: WorkdayIndex, today: date, catalogue: Catalogue | None = None
    ) -> None:
        self.index = index
        self.today = today
        self.catalogue = catalogue
        self._shortest: dict[tuple[Any, date], date] = {}  # (rule, start) -> shortest end
        self._rules: dict[str, Any] = {}  # stored rule text -> its JSON, read-only
        self._publicity_keys = sorted(
            {c.key for d in catalogue.domains.values() for c in d.categories.values()
             if c.min_publicity is not None}
        ) if catalogue is not None else []  # fmt: skip

    async def rows(
        self, conn: AsyncConnection, actor: Actor, query: AuditQuery
    ) -> tuple[list[dict[str, Any]], tuple[int, int] | None]:
        """One page of rows (at most `query.limit`) and the cursor of the next: given whenever
        the page is full (with a verdict filter the next page may then be empty)."""
        page: list[dict[str, Any]] = []
        async for row in self.every(conn, actor, query):
            page.append(row)
            if len(page) == query.limit:
                return page, (row["item_id"], row["version"])
        return page, None

    async def every(
        self, conn: AsyncConnection, actor: Actor, query: AuditQuery, *, withdrawals: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """Every row of the query, or with `withdrawals` only the penalty decisions'
        withdrawals (the summary's; `audit_counts` does the rest)."""
        async for batch in self.batches(conn, actor, query, withdrawals=withdrawals):
            for row in batch:
                yield row

    async def batches(
        self, conn: AsyncConnection, actor: Actor, query: AuditQuery, *, withdrawals: bool = False
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The rows of the query as JSON objects, a page of versions at a time."""
        async for batch in self.judged(conn, actor, query, withdrawals=withdrawals):
            yield [to_json(j) for j in batch]

    async def judged(
        self, conn: AsyncConnection, actor: Actor, query: AuditQuery, *, withdrawals: bool = False
    ) -> AsyncIterator[list[Judged]]:
        """The versions of the query judged, a page at a time (CSV exports write them so, with
        `audit_export.csv_rows`). From the second page on, the database reads the next page
        while this one is judged (a consumer that wanted one page has stopped by then); no read
        is pending when a page is handed out, so the consumer may use the connection, or stop,
        at any time."""
        query.check()
        agency = scope(actor, query.agency)

        stmt = versions(query, agency, self._publicity_keys, withdrawals=withdrawals).limit(SCAN)

        async def read(after: tuple[int, int] | None) -> list[VersionRow]:
            return [VersionRow._make(r) for r in await conn.execute(stmt, page_after(after))]

        batch, ahead = await read(query.cursor), False
        while True:
            later = await self._later(conn, batch)
            full = len(batch) == SCAN
            last = (batch[-1].item_id, batch[-1].version) if batch else None
            reading = asyncio.ensure_future(read(last)) if full and ahead else None
            try:
                judged = await self._judged(batch, later, reading is not None)
            finally:
                prefetched = await reading if reading is not None else None
            yield [j for j in judged if _wanted(j, query)]
            if not full:
                return
            batch = prefetched if prefetched is not None else await read(last)
            ahead = True

    async def _later(
        self, conn: AsyncConnection, batch: Sequence[VersionRow]
    ) -> dict[tuple[int, int], Website]:
        """The later versions' website publications some versions of `batch` are judged by."""
        judged_later = [
            r.item_id for r in batch
            if r.kind != VersionKind.WITHDRAWAL and r.latest_version > r.version
            and (r.own_id is None or r.own_action != Action.PUBLISH)
        ]  # fmt: skip
        return await later_publications(conn, judged_later) if judged_later else {}

    async def _judged(
        self, batch: Sequence[VersionRow], later: dict[tuple[int, int], Website], reading: bool
    ) -> list[Judged]:
        """`batch` judged; while the next page is `reading`, a turn of the event loop every
        `_TURN` versions lets its driver go on."""
        if not reading:
            return [self._judge(r, later) for r in batch]
        judged: list[Judged] = []
        for i in range(0, len(batch), _TURN):
            judged.extend(self._judge(r, later) for r in batch[i : i + _TURN])
            await asyncio.sleep(0)
        return judged

    def _rule(self, text: str | None) -> Any:
        if text is None:
            return None
        rule = self._rules.get(text)
        if rule is None:
            if len(self._rules) >= _RULES_CACHED:
                self._rules.clear()
            rule = self._rules[text] = json.loads(text)
        return rule

    def _judge(self, r: VersionRow, later: dict[tuple[int, int], Website]) -> Judged:
        stored_rule = self._rule(r.rule_text)
        own = own_website(r)
        start: date | None
        if r.kind == VersionKind.WITHDRAWAL:
            start = r.changed_on or r.formed_on
            deadline, provisional = penalty_withdrawal_due(self.index.calendar, start)
            delivery = own
            rule = penalty_rule_json(start)
        else:
            start = clock_start(stored_rule)
            deadline, provisional = r.deadline, r.deadline_provisional
            delivery = own if own is not None and own.action == Action.PUBLISH else (
                _first_later(later, r.item_id, r.version, r.latest_version))  # fmt: skip
            rule = stored_rule
        live_at = delivery.confirmed_at if delivery is not None else None
        withdrawn_first = r.item_status == "withdrawn" and r.kind != VersionKind.WITHDRAWAL
        verdict = judge(self.index, deadline, live_at, self.today, start, withdrawn_first)
        return Judged(r, start, deadline, provisional, rule, delivery, verdict,
                      ledger_state(delivery), self._publicity(r))  # fmt: skip

    def _publicity(self, r: Any) -> dict[str, Any] | None:
        """The publicity period (公示期) against the category's minimum, where it has one (only
        those categories' versions come with their fields)."""
        if r.fields is None:
            return None
        category = self.catalogue.category(r.domain, r.category) if self.catalogue else None
        rule = category.min_publicity if category is not None else None
        fields = r.fields if isinstance(r.fields, dict) else {}
        first, last = (
            fields.get(rule.start) if rule else None,
            fields.get(rule.end) if rule else None,
        )
        if rule is None or not (isinstance(first, str) and isinstance(last, str)):
            return None
        try:
            start, end = date.fromisoformat(first), date.fromisoformat(last)
        except ValueError:
            return None
        shortest = self._shortest.get((rule, start))
        if shortest is None:
            shortest = self._shortest[(rule, start)] = shortest_end(
                self.index.calendar, rule, start
            )
        return {"start": first, "end": last, "shortest_end": shortest.isoformat(),
                "ok": end >= shortest, "basis": rule.basis}  # fmt: skip


def _first_later(
    later: dict[tuple[int, int], Website], item_id: int, version: int, latest: int
) -> Website | None:
    """The earliest website publication of a version after `version`."""
    found = [later.get((item_id, v)) for v in range(version + 1, latest + 1)]
    return min((d for d in found if d is not None), key=lambda d: d.confirmed_at, default=None)


def _wanted(j: Judged, query: AuditQuery) -> bool:
    verdict = j.verdict
    if query.status is not None and verdict.verdict != query.status:
        return False
    return not (query.within is not None and verdict.due_in is not None
                and verdict.due_in > query.within)  # fmt: skip


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


ALERT_DAYS = 3  # "what will be late within three working days"


async def alerts(
    conn: AsyncConnection, index: WorkdayIndex, on: date
) -> dict[tuple[str, str, str], int]:
    """(agency, domain, "due_soon" | "overdue") -> how many versions: not live on the website
    (nor any later version of theirs) and due within `ALERT_DAYS` working days, or overdue."""
    later = deliveries.alias("later")
    published_since = (
        sa.select(later.c.id)
        .where(
            later.c.item_id == item_versions.c.item_id,
            later.c.version >= item_versions.c.version,
            later.c.channel == FIRST_PLATFORM,
            later.c.action == Action.PUBLISH,
            later.c.status == DeliveryStatus.PUBLISHED,
        )
        .exists()
    )
    stmt = (
        sa.select(items.c.agency_code, items.c.domain, item_versions.c.deadline)
        .join(items, items.c.id == item_versions.c.item_id)
        .where(
            item_versions.c.kind != VersionKind.WITHDRAWAL,
            items.c.status != "withdrawn",
            ~published_since,
        )
    )
    found: dict[tuple[str, str, str], int] = {}
    for agency, domain, deadline in await conn.execute(stmt):
        verdict = judge(index, deadline, None, on)
        if verdict.verdict == "overdue":
            key = (agency, domain, "overdue")
        elif verdict.due_in is not None and verdict.due_in <= ALERT_DAYS:
            key = (agency, domain, "due_soon")
        else:
            continue
        found[key] = found.get(key, 0) + 1
    return found
