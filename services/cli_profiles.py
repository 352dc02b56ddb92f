"""Sheet mapping profiles from the command line: `resultflow profiles list`, `show NAME`,
`save FILE.json` (create or replace; the file is one profile as the admin API takes it) and
`delete NAME`. The same store as the dashboard and the API; changes are audited as the
operator (`cli:<login>`)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path
from typing import Any


def add_commands(commands: Any) -> None:
    profiles = commands.add_parser("profiles", help="sheet mapping profiles: list, show, save")
    actions = profiles.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every profile of the lab, one JSON object each")
    actions.add_parser("show", help="one profile as JSON").add_argument("name")
    save = actions.add_parser("save", help="create or replace a profile from a JSON file")
    save.add_argument("file", type=Path)
    actions.add_parser("delete", help="delete a profile").add_argument("name")


async def _act(args: argparse.Namespace) -> tuple[str, int]:
    from pydantic import ValidationError

    from services.infra.audit import Audit
    from services.infra.database import connect
    from services.infra.settings import get_settings
    from services.infra.sheet_profiles import ProfileNotFound, SheetProfile, SheetProfiles

    settings = get_settings()
    client, db = connect(settings)
    store, lab, actor = SheetProfiles(db), settings.lab_id, f"cli:{getpass.getuser()}"
    try:
        if args.action == "list":
            rows = [p.model_dump_json() for p in await store.list(lab)]
            return "\n".join(rows), 0
        if args.action == "show":
            try:
                return (await store.get(lab, args.name)).model_dump_json(indent=1), 0
            except ProfileNotFound as error:
                return f"resultflow: {error}", 1
        if args.action == "save":
            try:
                profile = SheetProfile.model_validate_json(args.file.read_bytes())
            except (OSError, ValidationError) as error:
                return f"resultflow: {args.file}: {error}", 1
            await store.save(lab, profile, actor)
            await Audit(db).write(actor, "sheet_profile.saved", None, {"profile": profile.name})
            return f"saved sheet profile {profile.name}", 0
        if not await store.delete(lab, args.name):
            return f"resultflow: sheet profile '{args.name}' is not known", 1
        await Audit(db).write(actor, "sheet_profile.deleted", None, {"profile": args.name})
        return f"deleted sheet profile {args.name}", 0
    finally:
        await client.close()


def run(args: argparse.Namespace) -> None:
    text, status = asyncio.run(_act(args))
    print(text, file=sys.stderr if status else sys.stdout)
    sys.exit(status)
