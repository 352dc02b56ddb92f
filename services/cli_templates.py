"""Report templates from the command line: `resultflow templates check FILE.docx` (the lint,
one JSON object; exit 0 when the template may be used, 1 otherwise) and `resultflow
templates preview FILE.docx OUT.pdf` (the trial render with built-in sample data, converted
by LibreOffice exactly as reports are: PDF/A-2b, with the verification QR)."""

from __future__ import annotations

import argparse
import asyncio
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

    result = lint(args.file.read_bytes(), _mapping(args.mapping))
    if args.action == "check":
        print(json.dumps(result.as_dict(), indent=2))
        sys.exit(0 if result.ok else 1)
    if result.rendered is None:
        print(json.dumps(result.as_dict(), indent=2), file=sys.stderr)
        sys.exit("resultflow: the template cannot be previewed until the check passes")
    args.out.write_bytes(asyncio.run(_convert(result.rendered)))
    print(f"wrote {args.out}")


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
