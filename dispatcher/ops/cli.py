"""The `gongkai` command: serve, demo, migrate, agencies, tokens, items, deadlines, the ledger.

This module parses the command line and turns every error the project raises (`GongkaiError`,
the one root) into `error: …` on standard error, one line per field, and exit status 1. What
each command does is in `commands.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from dispatcher.errors import GongkaiError
from dispatcher.ops import audit, commands, deadlines, nginx
from dispatcher.rules.permissions import ROLES
from dispatcher.settings import Settings, load_settings

Command = Callable[[argparse.Namespace, Settings], Awaitable[int]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gongkai", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="settings file (default: ./gongkai.toml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    names: list[str] = []  # every command, "agency add" included: parser.get_default("commands")

    def add(
        name: str, func: Command, help: str, parent: Any = sub, group: str = ""
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
        if func is not _group_help:
            names.append(f"{group} {name}".strip())
        p.set_defaults(func=func)
        return p

    srv = add("serve", commands.cmd_serve, "serve the HTTP API, with a worker unless --no-worker")
    srv.add_argument("--no-worker", action="store_true", help="serve the API only")
    srv.add_argument(
        "--sandbox", action="store_true",
        help="run local stand-ins of the WeChat API and of a news outlet, with an account and an "
        "outlet on them (wechat:sandbox, media:sandbox)",
    )  # fmt: skip
    wrk = add(
        "worker", commands.cmd_worker, "run a worker that delivers approved items to the channels"
    )
    only = wrk.add_mutually_exclusive_group()
    only.add_argument("--channels", metavar="LIST",
                      help="only these channels' queue: website,feeds (where the site directory "
                      "is) or the others")  # fmt: skip
    only.add_argument("--except", dest="except_", metavar="LIST",
                      help="every channel but these (e.g. --except website,feeds)")  # fmt: skip
    rt = add("retry", commands.cmd_retry, "put a failed delivery back in the queue")
    rt.add_argument("id", type=int)
    rt.add_argument("--as", dest="as_", metavar="NAME", help="who is asking")
    demo = add("demo", commands.cmd_demo, "load sample agencies and items, then serve")
    demo.add_argument("--no-serve", action="store_true", help="load the samples and exit")
    add("migrate", commands.cmd_migrate, "create or upgrade the database schema")
    cat = add("catalogue", commands.cmd_catalogue, "print the catalogue of domains and categories")
    cat.add_argument("--json", action="store_true")
    dl = add(
        "deadline",
        commands.cmd_deadline,
        "the statutory deadline: by a category's rule, or N working days after START",
    )
    dl.add_argument("start", help="YYYY-MM-DD: what starts the clock (formed, changed, the "
                    "evaluation report received …); for a lead time, the event's day")  # fmt: skip
    how = dl.add_mutually_exclusive_group()
    how.add_argument("--days", type=int, help="N working days (default 20)")
    how.add_argument("--category", help="by this category's rule: KEY or DOMAIN/KEY")
    dl.add_argument(
        "--decision",
        choices=sorted(commands.DECISIONS),
        help="an administrative permit or penalty decision: 7 working days at most",
    )
    dl.add_argument("--json", action="store_true")

    agency = add("agency", _group_help, "manage agencies").add_subparsers(required=True)
    a = add("add", commands.cmd_agency_add, "register an agency", agency, "agency")
    a.add_argument("--code", required=True, help="统一社会信用代码 (18 characters)")
    a.add_argument("--name", required=True)
    a.add_argument("--region", required=True, help="6-digit administrative division code")
    a.add_argument("--index-prefix", help="索引号 prefix (default: the code)")

    token = add("token", _group_help, "manage API tokens").add_subparsers(required=True)
    t = add("create", commands.cmd_token_create, "create a token (printed once)", token, "token")
    t.add_argument("--agency", required=True)
    t.add_argument("--role", required=True, choices=[str(role) for role in ROLES])
    t.add_argument("--holder", required=True,
                   help="the person holding it; one person's tokens name the same holder, "
                        "or the self-approval rule cannot see it is one person")  # fmt: skip
    tl = add("list", commands.cmd_token_list, "list tokens (never their secrets)", token, "token")
    tl.add_argument("--agency")
    tl.add_argument("--json", action="store_true")
    tr = add("revoke", commands.cmd_token_revoke, "revoke a token at once", token, "token")
    tr.add_argument("id", type=int)

    s = add("submit", commands.cmd_submit, "submit an item from a JSON file")
    s.add_argument("file")
    s.add_argument("--as", dest="as_", metavar="NAME", help="who is submitting")
    s.add_argument("--idempotency-key")
    ap = add("approve", commands.cmd_approve, "approve an item's pending version")
    ap.add_argument("id", type=int)
    ap.add_argument("--as", dest="as_", metavar="NAME", help="who is approving")

    led = add("ledger", _group_help, "the hash-chained ledger").add_subparsers(required=True)
    add(
        "verify",
        commands.cmd_ledger_verify,
        "check the chain; name the first broken event",
        led,
        "ledger",
    )
    site = add("site", _group_help, "the public website").add_subparsers(required=True)
    add(
        "rebuild",
        commands.cmd_site_rebuild,
        "regenerate every page from the database",
        site,
        "site",
    )
    nginx.add_arguments(
        add(
            "nginx-conf",
            nginx.cmd_nginx_conf,
            "nginx in front: the site's files served by nginx, the rest passed to the app",
            site,
            "site",
        )
    )
    feeds = add("feeds", _group_help, "the Atom and RSS feeds").add_subparsers(required=True)
    add(
        "rebuild",
        commands.cmd_feeds_rebuild,
        "regenerate every feed and the feeds' state from the database",
        feeds,
        "feeds",
    )
    media = add("media", _group_help, "news outlets (signed webhooks)").add_subparsers(
        required=True
    )
    add(
        "secret",
        commands.cmd_media_secret,
        "print a new signing secret for an outlet (whsec_…): set it on both sides",
        media,
        "media",
    )
    aud = add("audit", audit.cmd_audit, "the timeliness audit: each version's deadline, "
              "publication and verdict (late, due, overdue, on time)")  # fmt: skip
    audit.add_arguments(aud)
    audits = aud.add_subparsers(dest="audit_command", metavar="{summary,annual}")
    summary = add("summary", audit.cmd_audit_summary, "on-time rates by agency, domain, "
                  "category and channel; working days taken (JSON)", audits, "audit")  # fmt: skip
    audit.add_arguments(summary)
    yearly = add("annual", audit.cmd_audit_annual, "the annual report's active-disclosure "
                 "figures (政府信息公开工作年度报告)", audits, "audit")  # fmt: skip
    yearly.add_argument("--year", type=int, required=True)
    yearly.add_argument("--agency", help="one agency (default: every one)")
    yearly.add_argument("--format", choices=("table", "csv", "json"), default="table")
    dls = add("deadlines", _group_help, "statutory deadlines").add_subparsers(required=True)
    add(
        "refresh",
        deadlines.cmd_deadlines_refresh,
        "recompute provisional deadlines on the calendar as configured now",
        dls,
        "deadlines",
    )
    parser.set_defaults(commands=tuple(names))
    return parser


async def _group_help(args: argparse.Namespace, settings: Settings) -> int:  # pragma: no cover
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(path=args.config)
        status: int = asyncio.run(args.func(args, settings))
        return status
    except GongkaiError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        for path, message in exc.errors:
            print(f"  {path}: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
