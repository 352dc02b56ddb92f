"""Staff accounts for operators: `resultflow users list | create | set-role | disable | enable
| reset-password | reset-mfa`, the same changes as the dashboard's Staff page
(`services.gateway.staff_users`), each audited as `cli:<os user>` and ending the user's
sessions."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from typing import Any

from services.gateway.permissions import Role
from services.gateway.staff_users import USER_ACTIONS


def add_commands(commands: Any) -> None:
    roles = [role.value for role in Role]
    users = commands.add_parser("users", help="staff users and their roles")
    actions = users.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every user, one JSON object each")
    create = actions.add_parser("create", help="create a user")
    create.add_argument("username")
    create.add_argument("--role", choices=roles, default="admin", help="default: admin")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    set_role = actions.add_parser("set-role", help="change a user's role")
    set_role.add_argument("username")
    set_role.add_argument("role", choices=roles)
    helps = {
        "disable": "stop a user signing in (sessions and API tokens stop working)",
        "enable": "let a disabled user sign in again",
        "reset-password": "print a temporary password; the user changes it at next login",
        "reset-mfa": "remove a lost second factor; the user sets up a new one at next login",
        "end-sessions": "sign the user out everywhere",
    }
    for verb in USER_ACTIONS:
        actions.add_parser(verb, help=helps[verb]).add_argument("username")


def run(args: argparse.Namespace) -> None:
    from services.gateway.accounts_store import UserError
    from services.gateway.login import session_lifetimes
    from services.gateway.sessions_store import Sessions
    from services.gateway.staff_users import StaffUsers
    from services.infra.database import connect, ensure_indexes
    from services.infra.settings import get_settings

    password = ""
    if args.action == "create":
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = os.environ.get("RESULTFLOW_ADMIN_PASSWORD") or getpass.getpass("Password: ")
    actor, actor_role = f"cli:{getpass.getuser()}", "operator"

    async def act() -> str:
        settings = get_settings()
        client, db = connect(settings)
        try:
            await ensure_indexes(db)
            users = StaffUsers(db, Sessions(db, **session_lifetimes(settings)))
            name = getattr(args, "username", "")
            if args.action == "list":
                rows = await users.list()
                return "\n".join(json.dumps(row, default=str) for row in rows)
            if args.action == "create":
                await users.create(actor, actor_role, name, Role(args.role), password)
                return f"created {args.role} user {name}"
            if args.action == "set-role":
                await users.set_role(actor, actor_role, name, Role(args.role))
                return f"{name} is now {args.role}"
            made = await users.act(actor, actor_role, name, args.action)
            if made:
                return f"temporary password for {name} (they change it at next login): {made}"
            return f"{args.action}: done for {name}"
        finally:
            await client.close()

    try:
        print(asyncio.run(act()))
    except UserError as error:
        sys.exit(f"resultflow: {error}")
