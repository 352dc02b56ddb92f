"""Report templates from the command line: `resultflow templates check FILE.docx` (the lint,
one JSON object; exit 0 when the template may be used, 1 otherwise) and `resultflow
templates preview FILE.docx OUT.pdf` (the trial render with built-in sample data, converted
by LibreOffice exactly as reports are: PDF/A-2b, with the verification QR).

The lab's stored templates, as on the dashboard's Templates pages (the same
`TemplateActions`, audited under `--as`): `list`, `upload NAME FILE.docx`, `map NAME VERSION
MAPPING.json`, `activate NAME VERSION`, `rules` (print the choice rules) and `set-rules
RULES.json` (`[{"test", "language", "template"}, ...]`). Each prints one JSON object; a
refusal exits 1 with the reason."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import tempfile
from pathlib import Path
from typing import Any


def add_commands(commands: Any) -> None:
    templates = commands.add_parser("templates", help="lab report templates: check, preview")
    actions = templates.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="lint a .docx template; JSON; exit 1 if refused")
    check.add_argument("file", type=Path)
    check.add_argument("--mapping", type=Path, help="JSON: placeholder -> {field|text}")
    preview = actions.add_parser("preview", help="render a .docx with sample data to a PDF")
    preview.add_argument("file", type=Path)
    preview.add_argument("out", type=Path)
    preview.add_argument("--mapping", type=Path, help="JSON: placeholder -> {field|text}")
    who = argparse.ArgumentParser(add_help=False)
    who.add_argument("--as", dest="as_user", default=f"{getpass.getuser()}@cli",
                     help="who is acting, for the audit trail (default: USER@cli)")  # fmt: skip
    actions.add_parser("list", help="the stored templates, their versions and checks")
    upload = actions.add_parser("upload", parents=[who], help="store a .docx as a new version")
    upload.add_argument("name")
    upload.add_argument("file", type=Path)
    mapping = actions.add_parser("map", parents=[who], help="map a version's own placeholders")
    mapping.add_argument("name")
    mapping.add_argument("version", type=int)
    mapping.add_argument("mapping", type=Path, help="JSON: placeholder -> {field|text}")
    activate = actions.add_parser("activate", parents=[who], help="the version new reports use")
    activate.add_argument("name")
    activate.add_argument("version", type=int)
    actions.add_parser("rules", help="print the template choice rules")
    set_rules = actions.add_parser("set-rules", parents=[who], help="replace the choice rules")
    set_rules.add_argument("file", type=Path, help='JSON: [{"test", "language", "template"}]')


def _mapping(path: Path | None) -> dict[str, dict[str, str]]:
    return json.loads(path.read_text()) if path else {}


async def _convert(docx: bytes) -> bytes:
    from services.convert.adapters import LibreOffice
    from services.infra.settings import get_settings

    settings = get_settings()
    with tempfile.TemporaryDirectory() as folder:
        office = LibreOffice(settings.soffice_path, Path(folder))
        await office.start()
        try:
            return await office.convert(
                docx, title="Template preview", subject="Sample data", author=settings.lab_name
            )
        finally:
            await office.close()


def run(args: argparse.Namespace) -> None:
    from services.infra.template_lint import lint

    if args.action not in ("check", "preview"):
        asyncio.run(_stored(args))
        return

    result = lint(args.file.read_bytes(), _mapping(args.mapping))
    if args.action == "check":
        print(json.dumps(result.as_dict(), indent=2))
        sys.exit(0 if result.ok else 1)
    if result.rendered is None:
        print(json.dumps(result.as_dict(), indent=2), file=sys.stderr)
        sys.exit("resultflow: the template cannot be previewed until the check passes")
    args.out.write_bytes(asyncio.run(_convert(result.rendered)))
    print(f"wrote {args.out}")


def _version_json(document: Any) -> dict[str, Any]:
    keys = ("name", "version", "filename", "sha256", "active", "lint", "mapping")
    return {key: document[key] for key in keys}


async def _stored(args: argparse.Namespace) -> None:
    from pydantic import ValidationError

    from services.gateway.actions import ActionRefused
    from services.gateway.admin_api_models import TemplateRules
    from services.gateway.template_actions import TemplateActions
    from services.infra.database import connect, ensure_indexes
    from services.infra.settings import get_settings

    client, db = connect(get_settings())
    await ensure_indexes(db)
    actions, where = TemplateActions(db), {"via": "cli", "actor_role": "operator"}
    try:
        if args.action == "list":
            for row in await actions.store.names():
                versions = await actions.store.versions(row["name"])
                checks = {v["version"]: bool(v["lint"].get("ok")) for v in versions}
                print(json.dumps({"name": row["name"], "active": row.get("active"),
                                  "versions": checks}))  # fmt: skip
        elif args.action == "upload":
            data = args.file.read_bytes()
            document = await actions.upload(
                args.name, args.file.name, data, args.as_user, args.as_user, where
            )
            print(json.dumps(_version_json(document), default=str))
        elif args.action == "map":
            mapping = json.loads(args.mapping.read_text())
            document = await actions.map_fields(
                args.name, args.version, mapping, args.as_user, where
            )
            print(json.dumps(_version_json(document), default=str))
        elif args.action == "activate":
            document = await actions.activate(args.name, args.version, args.as_user, where)
            print(json.dumps(_version_json(document), default=str))
        elif args.action == "rules":
            print(json.dumps({"rules": await actions.rules.get()}))
        else:
            wanted = json.loads(args.file.read_text())
            listed = TemplateRules.model_validate(
                wanted if isinstance(wanted, dict) else {"rules": wanted}
            )
            rules = listed.stored()
            print(json.dumps({"rules": await actions.save_rules(rules, args.as_user, where)}))
    except ActionRefused as refused:
        sys.exit(f"resultflow: {refused.reason}")
    except ValidationError as error:
        sys.exit(f"resultflow: {error}")
    finally:
        await client.close()


# The dashboard's preview: `python -m services.cli_templates IN OUT [MAPPING]`.
if __name__ == "__main__":
    run(
        argparse.Namespace(
            action="preview",
            file=Path(sys.argv[1]),
            out=Path(sys.argv[2]),
            mapping=Path(sys.argv[3]) if len(sys.argv) > 3 else None,
        )
    )
