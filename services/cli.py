"""The `resultflow` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
from pathlib import Path

from services import (
    cli_audit,
    cli_backup,
    cli_deploy,
    cli_intake,
    cli_profiles,
    cli_staff,
    cli_status,
    cli_templates,
    cli_users,
)


def export_contracts(directory: Path) -> None:
    from contracts.schema import asyncapi, json_schemas

    directory.mkdir(parents=True, exist_ok=True)
    for routing_key, schema in json_schemas().items():
        (directory / f"{routing_key}.schema.json").write_text(json.dumps(schema, indent=2) + "\n")
    (directory / "asyncapi.json").write_text(json.dumps(asyncapi(), indent=2) + "\n")
    print(f"wrote {len(json_schemas())} JSON Schemas and asyncapi.json to {directory}")


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

    cli_users.add_commands(commands)

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
    cli_audit.add_commands(commands)
    cli_deploy.add_commands(commands)
    cli_templates.add_commands(commands)
    cli_intake.add_commands(commands)
    cli_status.add_commands(commands)
    cli_profiles.add_commands(commands)
    cli_backup.add_commands(commands)

    run = commands.add_parser("run", help="run everything on this machine, with a demo batch")
    run.add_argument("--var", type=Path, default=Path("var"), help="data and logs folder")
    run.add_argument("--no-demo", action="store_true", help="do not upload the demo batch")

    commands.add_parser("gateway", help="run the gateway (HTTP) alone")

    args = parser.parse_args(argv)
    if args.command == "contracts":
        export_contracts(args.directory)
    elif args.command == "users":
        cli_users.run(args)
    elif args.command == "tokens":
        subject = getattr(args, "username", None) or getattr(args, "token_id", None)
        manage_tokens(args.action, subject, getattr(args, "name", ""))
    elif args.command in ("reports", "batches", "dead-letters", "release-rules"):
        cli_staff.run(args)
    elif args.command == "audit":
        cli_audit.run(args)
    elif args.command in ("broker", "database"):
        cli_deploy.run(args)
    elif args.command == "templates":
        cli_templates.run(args)
    elif args.command == "intake":
        cli_intake.run(args)
    elif args.command == "status":
        cli_status.run(args)
    elif args.command == "profiles":
        cli_profiles.run(args)
    elif args.command == "backup":
        cli_backup.run(args)
    elif args.command == "run":
        if importlib.util.find_spec("devtools") is None:
            sys.exit("resultflow: `run` needs the development tools of a source checkout")
        from devtools.devstack import run_everything

        run_everything(args.var, demo=not args.no_demo)
    elif args.command == "gateway":
        from services.gateway.main import main as gateway_main

        gateway_main()
