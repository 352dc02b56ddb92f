"""Deployment setup, run once per deployment (and again after a change), as administrators:

- `resultflow broker declare`: exchanges, queues, dead-letter queues and bindings
  (AMQP_URL must be a user that may configure them);
- `resultflow broker grant [--vhost V] [--management-url URL] [PRINCIPAL...]`: one RabbitMQ
  user per service and one for the LIS, with the permissions of `broker_access`. Each
  password comes from `RESULTFLOW_BROKER_PASSWORD_<PRINCIPAL>`; one not set is generated and
  printed once, as `NAME=value` lines on stdout (for a .env file). Through `rabbitmqctl` on
  the broker's machine, or the management HTTP API as `RABBITMQ_ADMIN_USER` /
  `RABBITMQ_ADMIN_PASSWORD`;
- `resultflow broker permissions`: what each principal may do, as JSON;
- `resultflow database indexes`: every index (MONGODB_URI must be a user that may create them);
- `resultflow database users-script`: the mongosh script that makes the MongoDB roles and users.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import secrets
import sys
from typing import Any


def add_commands(commands: Any) -> None:
    broker = commands.add_parser("broker", help="RabbitMQ topology and users (setup)")
    broker_actions = broker.add_subparsers(dest="action", required=True)
    broker_actions.add_parser("declare", help="declare the topology as AMQP_URL's user")
    grant = broker_actions.add_parser("grant", help="create/update the users and permissions")
    grant.add_argument("--vhost", default="/", help="virtual host (default: /)")
    grant.add_argument("--user-prefix", default="resultflow-", help="default: resultflow-")
    grant.add_argument(
        "--management-url",
        default="",
        help="the management API (http://rabbitmq:15672); default: rabbitmqctl on this machine",
    )
    grant.add_argument("principals", nargs="*", metavar="PRINCIPAL", help="default: all")
    broker_actions.add_parser("permissions", help="print every principal's permissions")

    database = commands.add_parser("database", help="MongoDB indexes and users (setup)")
    database_actions = database.add_subparsers(dest="action", required=True)
    database_actions.add_parser("indexes", help="create every index as MONGODB_URI's user")
    database_actions.add_parser("users-script", help="print deploy/mongodb/init-users.js")


def run(args: argparse.Namespace) -> None:
    if args.command == "broker":
        {"declare": declare_topology, "grant": grant, "permissions": print_permissions}[
            args.action
        ](args)
    elif args.action == "indexes":
        asyncio.run(create_indexes())
        print("indexes ready")
    else:
        from services.infra.database_access import init_script

        print(init_script(), end="")


def declare_topology(_: argparse.Namespace) -> None:
    from services.infra.broker import declare_topology, make_broker
    from services.infra.settings import get_settings

    async def declare() -> None:
        settings = get_settings()
        broker = make_broker(settings)
        await broker.connect()
        try:
            await declare_topology(broker, settings.amqp_url)
        finally:
            await broker.stop()

    asyncio.run(declare())
    print("topology declared")


def grant(args: argparse.Namespace) -> None:
    from services.infra import broker_access
    from services.infra.broker_admin import BrokerAdmin, ManagementApi, Rabbitmqctl
    from services.infra.broker_admin import grant as apply

    known = broker_access.principals()
    if unknown := set(args.principals) - set(known):
        sys.exit(f"resultflow: no principal {', '.join(sorted(unknown))}; known: {known}")
    chosen = tuple(args.principals) or known
    passwords, generated = {}, []
    for principal in chosen:
        variable = broker_access.password_variable(principal)
        passwords[principal] = os.environ.get(variable) or ""
        if not passwords[principal]:
            # URL-safe: it goes into an amqp:// URL as it is.
            passwords[principal] = secrets.token_urlsafe(24)
            generated.append(f"{variable}={passwords[principal]}")
    admin: BrokerAdmin
    if args.management_url:
        user, password = (
            os.environ.get("RABBITMQ_ADMIN_USER", ""),
            os.environ.get("RABBITMQ_ADMIN_PASSWORD", ""),
        )
        if not (user and password):
            sys.exit("resultflow: set RABBITMQ_ADMIN_USER and RABBITMQ_ADMIN_PASSWORD")
        admin = ManagementApi(args.management_url, user, password)
    else:
        admin = Rabbitmqctl()
    users = asyncio.run(apply(admin, args.vhost, passwords, args.user_prefix, chosen))
    print(f"granted on vhost {args.vhost}: {', '.join(users)}", file=sys.stderr)
    if generated:
        print("generated passwords (shown once; keep them in the .env):", file=sys.stderr)
        print("\n".join(generated))


def print_permissions(_: argparse.Namespace) -> None:
    from services.infra.broker_access import all_permissions, username

    table = [{"user": username(p.principal), **dataclasses.asdict(p)} for p in all_permissions()]
    print(json.dumps(table, indent=2))


async def create_indexes() -> None:
    from services.infra.database import connect, ensure_indexes
    from services.infra.settings import get_settings

    client, db = connect(get_settings())
    try:
        await ensure_indexes(db)
    finally:
        await client.close()
