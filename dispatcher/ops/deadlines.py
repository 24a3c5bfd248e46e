"""`gongkai deadlines refresh`: recompute the provisional deadlines on the calendar as it now
is (an override file for a new year, a newer chinese_calendar), each change a ledger event. Run
by `serve` and `gongkai worker` at start-up too (`commands._refresh_deadlines`), so loading
the file is enough."""

from __future__ import annotations

import argparse
import json
import logging

from dispatcher.items.deadline_refresh import refresh_provisional
from dispatcher.ops.commands import database
from dispatcher.rules.rulebook import build_rules
from dispatcher.settings import Settings

log = logging.getLogger(__name__)


async def cmd_deadlines_refresh(args: argparse.Namespace, settings: Settings) -> int:
    rules = build_rules(settings)
    async with database(settings) as db:
        changes = await refresh_provisional(db, rules)
    for change in changes:
        print(json.dumps({"item_id": change.item_id, "version": change.version,
                          **change.to_json()}, ensure_ascii=False))  # fmt: skip
    print(f"{len(changes)} provisional deadline(s) changed")
    return 0
