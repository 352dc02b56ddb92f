"""The `resultflow` command."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib.util
import json
import os
import sys
from pathlib import Path

from services import cli_staff
from services.gateway.permissions import Role


def export_contracts(directory: Path) -> None:
    from contracts.schema import asyncapi, json_schemas

    directory.mkdir(parents=True, exist_ok=True)
    for routing_key, schema in json_schemas().items():
        (directory / f"{routing_key}.schema.json").write_text(json.dumps(schema, indent=2) + "\n")
    (directory / "asyncapi.json").write_text(json.dumps(asyncapi(), indent=2) + "\n")
    print(f"wrote {len(json_schemas())} JSON Schemas and asyncapi.json to {directory}")


def manage_users(args: argparse.Namespace) -> None:
    """`resultflow users create NAME [--role R] | set-role NAME R | disable NAME | enable NAME`;
    every change is audited (actor `cli:<os user>`)."""
    from services.gateway.accounts_store import UserError, Users
    from services.gateway.accounts_store import create_user as store_user
    from services.infra.audit import Audit
    from services.infra.database import connect, ensure_indexes
    from services.infra.settings import get_settings

    password = ""
    if args.action == "create":
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = os.environ.get("RESULTFLOW_ADMIN_PASSWORD") or getpass.getpass("Password: ")

    async def run() -> str:
        client, db = connect(get_settings())
        try:
            await ensure_indexes(db)
            users, name = Users(db), args.username
            if args.action == "create":
                await store_user(db, name, password, args.role)
                done, detail = f"created {args.role} user {name}", {"role": args.role}
            elif args.action == "set-role":
                await users.set_role(name, args.role)
                done, detail = f"{name} is now {args.role}", {"role": args.role}
            else:
                await users.set_disabled(name, args.action == "disable")
                done, detail = f"{args.action}d user {name}", {}
            action = {"create": "user.created", "set-role": "user.role_changed"}.get(
                args.action, f"user.{args.action}d"
            )
            actor = f"cli:{getpass.getuser()}"
            await Audit(db).write(actor, action, None, {"username": name, **detail})
            return done
        finally:
            await client.close()

    try:
        print(asyncio.run(run()))
    except UserError as error:
        sys.exit(f"resultflow: {error}")


def manage_tokens(action: str, subject: str | None, name: str) -> None:
    """`resultflow tokens create USERNAME | revoke TOKEN_ID | list [USERNAME]`."""
    from services.gateway.accounts_store import ApiTokens, UserError
    from services.infra.database import connect, ensure_indexes
    from services.infra.settings import get_settings

    async def run() -> None:
        client, db = connect(get_settings())
        try:
            await ensure_indexes(db)
            tokens = ApiTokens(db)
            if action == "create":
                token_id, token = await tokens.create(str(subject), name)
                # The token is shown once; only its hash is kept.
                print(json.dumps({"id": token_id, "username": subject, "token": token}))
            elif action == "revoke":
                if not await tokens.revoke(str(subject)):
                    sys.exit(f"resultflow: no live token {subject}")
                print(f"revoked token {subject}")
            else:
                for row in await tokens.list(subject):
                    print(json.dumps(row, default=str))
        finally:
            await client.close()

    try:
        asyncio.run(run())
    except UserError as error:
        sys.exit(f"resultflow: {error}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="resultflow")
    commands = parser.add_subparsers(dest="command", required=True)

    contracts = commands.add_parser("contracts", help="message contracts")
    contracts_commands = contracts.add_subparsers(dest="action", required=True)
    export = contracts_commands.add_parser("export", help="write JSON Schemas and AsyncAPI")
    export.add_argument("directory", type=Path)

    roles = [role.value for role in Role]
    users = commands.add_parser("users", help="staff users and their roles")
    users_commands = users.add_subparsers(dest="action", required=True)
    create = users_commands.add_parser("create", help="create a user")
    create.add_argument("username")
    create.add_argument("--role", choices=roles, default="admin", help="default: admin")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    set_role = users_commands.add_parser("set-role", help="change a user's role")
    set_role.add_argument("username")
    set_role.add_argument("role", choices=roles)
    for verb in ("disable", "enable"):
        users_commands.add_parser(verb, help=f"{verb} a user").add_argument("username")

    tokens = commands.add_parser("tokens", help="bearer tokens for the admin API")
    tokens_commands = tokens.add_subparsers(dest="action", required=True)
    token_create = tokens_commands.add_parser("create", help="make a token; prints it once")
    token_create.add_argument("username")
    token_create.add_argument("--name", default="", help="what the token is for")
    token_revoke = tokens_commands.add_parser("revoke", help="revoke a token by its id")
    token_revoke.add_argument("token_id")
    token_list = tokens_commands.add_parser("list", help="list tokens (never the tokens)")
    token_list.add_argument("username", nargs="?")

    cli_staff.add_commands(commands)

    run = commands.add_parser("run", help="run everything on this machine, with a demo batch")
    run.add_argument("--var", type=Path, default=Path("var"), help="data and logs folder")
    run.add_argument("--no-demo", action="store_true", help="do not upload the demo batch")

    commands.add_parser("gateway", help="run the gateway (HTTP) alone")

    args = parser.parse_args(argv)
    if args.command == "contracts":
        export_contracts(args.directory)
    elif args.command == "users":
        manage_users(args)
    elif args.command == "tokens":
        subject = getattr(args, "username", None) or getattr(args, "token_id", None)
        manage_tokens(args.action, subject, getattr(args, "name", ""))
    elif args.command in ("reports", "batches", "release-rules"):
        cli_staff.run(args)
    elif args.command == "run":
        if importlib.util.find_spec("devtools") is None:
            sys.exit("resultflow: `run` needs the development tools of a source checkout")
        from devtools.devstack import run_everything

        run_everything(args.var, demo=not args.no_demo)
    elif args.command == "gateway":
        from services.gateway.main import main as gateway_main

        gateway_main()
