"""The audit trail for operators: `resultflow audit list [filters] [--csv]` and
`resultflow audit verify`.

`list` prints the entries the filters match, newest first: one JSON object a line, or CSV
(the same as the dashboard's export). `verify` walks the hash chain: exit 0 with
"audit chain intact: N entries", or exit 1 naming the first broken entry, its time and action.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import sys
from typing import Any

LIST_LIMIT = 100  # JSON lines printed unless --limit says otherwise (CSV: all)


def add_commands(commands: Any) -> None:
    audit = commands.add_parser("audit", help="the audit trail: list it, verify its chain")
    actions = audit.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="entries, newest first (JSON lines or --csv)")
    listing.add_argument("--actor", default="", help="part of the actor: alice, patient")
    listing.add_argument("--action", dest="action_prefix", default="", help="e.g. report.")
    listing.add_argument("--object", default="", help="a report, batch or user id")
    listing.add_argument("--outcome", default="", choices=["", "success", "failure", "refused"])
    listing.add_argument("--from", dest="date_from", default="", help="YYYY-MM-DD (UTC)")
    listing.add_argument("--to", dest="date_to", default="", help="YYYY-MM-DD, included")
    listing.add_argument("--csv", action="store_true", help="CSV, safe for spreadsheets")
    listing.add_argument(
        "--limit", type=int, default=None, help=f"at most this many (default {LIST_LIMIT}; "
        "with --csv all; 0: all)"
    )  # fmt: skip
    actions.add_parser("verify", help="check the hash chain; exit 1 at the first broken entry")


def run(args: argparse.Namespace) -> None:
    from services.infra.database import connect
    from services.infra.settings import get_settings

    async def main() -> str | None:
        client, db = connect(get_settings())
        try:
            if args.action == "verify":
                return await _verify(db)
            await _list(db, args)
            return None
        finally:
            await client.close()

    if problem := asyncio.run(main()):
        sys.exit(f"resultflow: {problem}")


async def _verify(db: Any) -> str | None:
    from services.infra.audit import Audit

    report = await Audit(db).verify()
    if report.broken is not None:
        return f"audit chain broken at {report.broken.describe()}"
    older = f"; {report.unchained} older entries predate the chain" if report.unchained else ""
    head = f"; head hash {report.head_hash}" if report.checked else ""
    print(f"audit chain intact: {report.checked} entries{head}{older}")
    return None


async def _list(db: Any, args: argparse.Namespace) -> None:
    from services.infra.audit import Audit
    from services.infra.audit_search import CSV_COLUMNS, AuditFilter, csv_row, entry_view

    filters = AuditFilter.from_query(
        {
            "actor": args.actor,
            "action": args.action_prefix,
            "object": args.object,
            "outcome": args.outcome,
            "from": args.date_from,
            "to": args.date_to,
        }
    )
    limit = args.limit if args.limit is not None else (0 if args.csv else LIST_LIMIT)
    writer = csv.writer(sys.stdout)
    if args.csv:
        writer.writerow(CSV_COLUMNS)
    printed = 0
    entries = Audit(db).matching(filters)
    async with contextlib.aclosing(entries):
        async for entry in entries:
            if limit and printed >= limit:
                break
            if args.csv:
                writer.writerow(csv_row(entry))
            else:
                print(json.dumps(entry_view(entry), default=str, ensure_ascii=False))
            printed += 1
