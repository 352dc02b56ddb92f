"""Staff actions for operators: `resultflow reports | batches | dead-letters | release-rules`.

The same actions as the dashboard's forms and the admin API (`services.gateway.actions`),
run against the system's MongoDB and RabbitMQ, audited under the name given with `--as`.
Each prints one JSON object per report or batch it acted on; a refusal exits non-zero with
the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

REPORT_ACTIONS = ("release", "withdraw", "retry", "resend", "reissue-link")
BATCH_ACTIONS = ("retry-failed", "release-held", "cancel", "confirm", "discard")
PREVIEW_DECISIONS = ("confirm", "discard")  # a previewed upload: make its reports, or not


def add_commands(commands: Any) -> None:
    who = argparse.ArgumentParser(add_help=False)
    who.add_argument(
        "--as",
        dest="as_user",
        default=f"{getpass.getuser()}@cli",
        help="who is acting, for the audit trail (default: USER@cli)",
    )
    reports = commands.add_parser("reports", help="act on reports (as in the dashboard)")
    report_actions = reports.add_subparsers(dest="action", required=True)
    for action in REPORT_ACTIONS:
        command = report_actions.add_parser(action, parents=[who], help=f"{action} reports")
        command.add_argument("ids", nargs="+", metavar="REPORT_ID")
        command.add_argument("--reason", default="")
        if action in ("resend", "reissue-link"):
            command.add_argument("--phone", default="", help="a corrected mobile number")
            command.add_argument("--request-id", default="", help="asking again sends no more")
    report_actions.add_parser("stuck", help="reports not moved on for longer than allowed")
    report_actions.add_parser("glance", help="the dashboard's state at a glance, as JSON")
    batches = commands.add_parser("batches", help="act on a whole batch")
    batch_actions = batches.add_subparsers(dest="action", required=True)
    upload = batch_actions.add_parser("upload", parents=[who], help="upload a results sheet")
    upload.add_argument("file", type=Path)
    upload.add_argument("--profile", default=None, help="a sheet profile's name")
    upload.add_argument("--template", default=None, help="the template of every report")
    upload.add_argument("--preview", action="store_true", help="only show what it would make")
    for action in BATCH_ACTIONS:
        command = batch_actions.add_parser(action, parents=[who], help=f"{action} a batch")
        command.add_argument("batch_id")
        command.add_argument("--reason", default="")
    letters = commands.add_parser("dead-letters", help="what the system gave up on")
    letter_actions = letters.add_subparsers(dest="action", required=True)
    listing = letter_actions.add_parser("list", help="one JSON object each, newest first")
    listing.add_argument("--queue", default=None)
    listing.add_argument("--state", default="dead", choices=("dead", "replayed", "discarded"))
    replay = letter_actions.add_parser("replay", parents=[who], help="back to their queue")
    replay.add_argument("ids", nargs="+", metavar="ID")
    replay_all = letter_actions.add_parser("replay-all", parents=[who], help="every waiting one")
    replay_all.add_argument("--queue", default=None)
    discard = letter_actions.add_parser("discard", parents=[who], help="drop, with a reason")
    discard.add_argument("ids", nargs="+", metavar="ID")
    discard.add_argument("--reason", required=True)
    rules = commands.add_parser("release-rules", help="the lab's release rules")
    rule_actions = rules.add_subparsers(dest="action", required=True)
    rule_actions.add_parser("show", help="print them as JSON")
    put = rule_actions.add_parser("set", parents=[who], help="replace them from a JSON file")
    put.add_argument("file", type=Path)


def run(args: argparse.Namespace) -> None:
    from pydantic import ValidationError

    from services.gateway.actions import ActionRefused

    try:
        asyncio.run(_run(args))
    except ActionRefused as refused:
        sys.exit(f"resultflow: {refused.reason}")
    except ValidationError as error:
        sys.exit(f"resultflow: {error}")


async def _run(args: argparse.Namespace) -> None:
    from services.gateway.actions import StaffActions
    from services.gateway.batch_actions import BatchActions
    from services.gateway.batch_preview import BatchPreviews
    from services.infra.logging import configure_logging
    from services.infra.release_rules import ReleaseRules, ReleaseRuleStore
    from services.infra.service import Resources

    resources = Resources.create("cli")
    configure_logging("cli", logging.WARNING, stream="stderr")  # stdout is for the results
    await resources.start()
    try:
        actions = StaffActions(resources)
        client = {"via": "cli", "actor_role": "operator"}  # whoever runs the system's CLI
        if args.command == "reports" and args.action == "stuck":
            await _stuck(resources)
        elif args.command == "reports" and args.action == "glance":
            await _glance(resources)
        elif args.command == "reports":
            for report_id in args.ids:
                report = await _report_action(actions, args, report_id, client)
                _print(
                    {"id": report["_id"], "version": report["version"], "status": report["status"]}
                )
        elif args.command == "batches" and args.action in PREVIEW_DECISIONS:
            previews = BatchPreviews(resources)
            decide = previews.confirm if args.action == "confirm" else previews.discard
            batch = await decide(args.batch_id, args.as_user, client)
            _print({"batch_id": batch["_id"], "status": batch["status"]})
        elif args.command == "batches" and args.action == "upload":
            await _upload(resources, args, client)
        elif args.command == "batches":
            batches = BatchActions(resources)
            if args.action == "retry-failed":
                outcome = await batches.retry_failed(args.batch_id, args.as_user, client)
            elif args.action == "release-held":
                outcome = await batches.release_held(
                    args.batch_id, args.as_user, args.reason, client
                )
            else:
                outcome = await batches.cancel(args.batch_id, args.as_user, args.reason, client)
            left = [{"id": report_id, "detail": why} for report_id, why in outcome.left]
            _print({"batch_id": args.batch_id, "done": outcome.done, "left": left})
        elif args.command == "dead-letters":
            await _dead_letters(resources, args)
        elif args.action == "show":
            rules = await ReleaseRuleStore(resources.db).get(resources.settings.lab_id)
            _print(rules.model_dump(mode="json"))
        else:
            rules = ReleaseRules.model_validate_json(args.file.read_bytes())
            updated_at = await actions.save_release_rules(rules, args.as_user, client)
            _print({"rules": len(rules.rules), "updated_at": updated_at.isoformat()})
    finally:
        await resources.broker.stop()
        await resources.close()


async def _report_action(
    actions: Any, args: argparse.Namespace, report_id: str, client: dict[str, Any]
) -> Any:
    who = args.as_user
    if args.action == "release":
        return await actions.release(report_id, who, args.reason, client)
    if args.action == "withdraw":
        return await actions.withdraw(report_id, who, args.reason, client)
    if args.action == "retry":
        return await actions.retry(report_id, who, client)
    return await actions.text_again(
        report_id,
        who,
        client,
        request_id=args.request_id or uuid.uuid4().hex,
        phone=args.phone,
        why="resend" if args.action == "resend" else "link_reissued",
    )


async def _stuck(resources: Any) -> None:
    from services.gateway.queries import ReportFilter, ReportQueries

    reports, page, more = ReportQueries(resources.db), 1, True
    while more:
        rows, more = await reports.page(ReportFilter(stuck="1"), page)
        for row in rows:
            _print({key: row.get(key) for key in ("_id", "status", "updated_at", "batch_id")})
        page += 1


async def _upload(resources: Any, args: argparse.Namespace, client: dict[str, Any]) -> None:
    from services.gateway.uploads import Upload, UploadRefused, take_upload
    from services.infra.batches import Batches

    upload = Upload(args.file.name, args.file.read_bytes(), args.as_user, profile=args.profile,
                    template=args.template, preview=args.preview)  # fmt: skip
    try:
        batch = await take_upload(resources, Batches(resources.db), upload, args.as_user, client)
    except UploadRefused as refused:
        sys.exit(f"resultflow: {refused}")
    _print({"batch_id": batch["_id"], "status": batch["status"]})


async def _glance(resources: Any) -> None:
    from services.gateway.admin_api_models import GlanceView
    from services.gateway.glance import GlanceQueries

    glance = await GlanceQueries(resources.db, resources.settings.time_zone).now()
    print(GlanceView.of(glance).model_dump_json())


async def _dead_letters(resources: Any, args: argparse.Namespace) -> None:
    from services.gateway.dead_letters import DeadLetterActions
    from services.infra.dead_letters import DeadLetters

    actions, role = DeadLetterActions(resources), "operator"
    if args.action == "list":
        page, more = 1, True
        while more:
            rows, more = await DeadLetters(resources.db).page(args.queue, args.state, page)
            for row in rows:
                _print({key: row.get(key) for key in LETTER_FIELDS})
            page += 1
    elif args.action == "replay-all":
        _print({"replayed": await actions.replay_all(args.queue, args.as_user, role)})
    else:
        for letter_id in args.ids:
            if args.action == "replay":
                await actions.replay(letter_id, args.as_user, role)
            else:
                await actions.discard(letter_id, args.as_user, role, args.reason)
            _print({"id": letter_id, "state": {"replay": "replayed"}.get(args.action, "discarded")})


LETTER_FIELDS = ("_id", "queue", "reason", "first_failed_at", "last_failed_at", "report_id",
                 "batch_id", "state")  # fmt: skip


def _print(value: dict[str, Any]) -> None:
    print(json.dumps(value, default=str))
