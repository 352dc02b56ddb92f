"""`resultflow intake check FILE [--profile NAME] [--region CC] [--suggest]`: what intake
would make of a file, without storing or sending anything. Prints one JSON object:

    {"kind": "sheet", "reports": [...], "rejected": [{"row", "column", "reason"}],
     "skipped": [{"row", "reason"}], "error": null}

exit 0 when the file could be read (rows may still be rejected), 1 with `error` set when the
file is refused. Each kind of file registers a reader in `READERS` (first whose `detect`
says yes wins; sheets are the fallback): HL7 v2 and FHIR intake plug in there."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Options:
    region: str
    profile: str | None
    today: date
    # The profile itself (a SheetProfile), loaded from MongoDB by `run`; None: the usual.
    sheet_profile: Any = None
    # `--suggest`: the lab's stored profiles, to name the one matching the sheet's headers.
    stored_profiles: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Reader:
    kind: str
    detect: Callable[[bytes, str], bool]
    check: Callable[[bytes, str, Options], dict[str, Any]]


READERS: list[Reader] = []


def register(reader: Reader) -> None:
    """Add a kind of file (insert before the sheet reader, which accepts anything)."""
    READERS.insert(max(len(READERS) - 1, 0), reader)


def add_commands(commands: Any) -> None:
    intake = commands.add_parser("intake", help="try a results file without storing it")
    actions = intake.add_subparsers(dest="action", required=True)
    check = actions.add_parser(
        "check", help="read a sheet, an HL7 v2 message or a FHIR Bundle; JSON; exit 1 if refused"
    )
    check.add_argument("file", type=Path)
    check.add_argument("--profile", help="the lab's sheet profile (date order, columns)")
    check.add_argument("--region", help="country for numbers without a country code")
    check.add_argument(
        "--suggest",
        action="store_true",
        help="without --profile: name the stored profile "
        "matching the sheet's headers (reads MongoDB)",
    )


def patient_json(patient: Any) -> dict[str, Any]:
    """A report's patient as `intake check` prints it (the phone in E.164)."""
    return {
        "patient_id": patient.patient_id,
        "name": patient.name,
        "date_of_birth": patient.date_of_birth.isoformat(),
        "phone": patient.phone,
    }


def report_json(draft: Any) -> dict[str, Any]:
    """A report draft as `intake check` prints it."""
    patient = draft.patient
    key = draft.source_key
    return {
        "patient": patient_json(patient),
        "accession": key.removeprefix("lis:") if key.startswith("lis:") else None,
        "source_key": key,
        "sample_date": draft.sample_date.isoformat(),
        "results": [r.model_dump(mode="json") for r in draft.results],
        "corrected": False,
    }


def check_sheet(data: bytes, filename: str, options: Options) -> dict[str, Any]:
    from services.ingest import adapters, logic, preview, profiles, sheet_reader
    from services.ingest.errors import SheetError

    profile = options.sheet_profile
    sheets = sheet_reader.read_workbook(data, filename)
    cells = preview.header_cells(sheets)
    suggested = preview.suggestion(profile, options.stored_profiles, cells)
    try:
        table = adapters.table_of(sheets, filename, profile)
    except SheetError as error:
        hint = f"; the stored profile '{suggested}' matches its headers" if suggested else ""
        raise SheetError(f"{error}{hint}") from None
    outcome = profiles.group(table, profile, options.region, options.today)
    labels = sorted(logic.LABELS.values(), key=len, reverse=True)
    return {
        "reports": [report_json(d) for d in outcome.drafts],
        "rejected": [
            {
                "row": r.row,
                "column": next((c for c in labels if r.reason.startswith(c)), ""),
                "reason": r.reason,
            }
            for r in outcome.rejected
        ],
        "skipped": [{"row": s.row, "reason": s.reason} for s in table.skipped],
        "unknown_columns": table.unknown,
        "profile": profile.name if profile else None,
        "suggested_profile": suggested,
    }


READERS.append(Reader("sheet", lambda data, name: True, check_sheet))
CHECK_LAB = "intake-check"  # reports are not stored: any lab id will do


def lis_report_json(result: Any, corrected: bool) -> dict[str, Any]:
    """An LIS result (from HL7 v2 or FHIR) as `intake check` prints a report."""
    patient = result.patient
    return {
        "patient": patient_json(patient),
        "accession": result.accession,
        "source_key": f"lis:{result.accession}",
        "sample_date": result.sample_date.isoformat(),
        "results": [r.model_dump(mode="json") for r in result.results],
        "corrected": corrected,
    }


def _is_hl7(data: bytes, name: str) -> bool:
    return data.lstrip(b"\x0b \r\n").startswith(b"MSH|") or name.lower().endswith(".hl7")


def check_hl7(data: bytes, filename: str, options: Options) -> dict[str, Any]:
    from services.ingest import hl7

    try:
        message = hl7.parse(data.strip(b"\x0b\x1c \r\n"))  # an MLLP block's framing too
        results = hl7.to_results(message, CHECK_LAB, options.region)
    except hl7.Hl7Error as error:
        raise ValueError(str(error)) from None
    # A corrected result (OBR-25 or OBX-11 "C") becomes a new version of its report.
    corrected = any(
        (segment[0][0] == "OBR" and hl7.value(segment, 25) == "C")
        or (segment[0][0] == "OBX" and hl7.value(segment, 11) == "C")
        for segment in message
    )
    return {"reports": [lis_report_json(r, corrected) for r in results]}


def _is_fhir(data: bytes, name: str) -> bool:
    head = data.lstrip()[:2000]
    return head.startswith(b"{") and b'"resourceType"' in head and b"Bundle" in head


def check_fhir(data: bytes, filename: str, options: Options) -> dict[str, Any]:
    from services.infra import fhir_bundle

    try:
        bundle = json.loads(data)
    except ValueError as error:
        raise ValueError(f"not JSON: {error}") from None
    results = fhir_bundle.to_results(bundle, CHECK_LAB, options.region)  # FhirError: refused
    corrected = [
        entry.get("resource", {}).get("status") == "corrected"
        for entry in bundle.get("entry", [])
        if entry.get("resource", {}).get("resourceType") == "DiagnosticReport"
    ]
    return {"reports": [lis_report_json(r, c) for r, c in zip(results, corrected, strict=False)]}


register(Reader("hl7v2", _is_hl7, check_hl7))
register(Reader("fhir", _is_fhir, check_fhir))


def check_file(path: Path, options: Options) -> tuple[dict[str, Any], int]:
    """The JSON answer for one file and the exit status."""
    from services.ingest.errors import SheetError

    data = path.read_bytes()
    reader = next(r for r in READERS if r.detect(data, path.name))
    answer: dict[str, Any] = {"kind": reader.kind, "reports": [], "rejected": [], "skipped": []}
    try:
        answer.update(reader.check(data, path.name, options))
    except (SheetError, ValueError) as error:
        answer["error"] = str(error)
        return answer, 1
    answer["error"] = None
    return answer, 0


async def _stored_profiles(settings: Any) -> tuple[Any, ...]:
    from services.infra.database import connect
    from services.infra.sheet_profiles import SheetProfiles

    client, db = connect(settings)
    try:
        return tuple(await SheetProfiles(db).list(settings.lab_id))
    finally:
        await client.close()


async def _load_profile(settings: Any, name: str) -> Any:
    """The lab's sheet profile of that name, or why there is none (a string)."""
    from services.infra.database import connect
    from services.infra.sheet_profiles import ProfileNotFound, SheetProfiles

    client, db = connect(settings)
    try:
        return await SheetProfiles(db).get(settings.lab_id, name)
    except ProfileNotFound as error:
        return str(error)
    finally:
        await client.close()


def run(args: argparse.Namespace) -> None:
    from services.infra.settings import get_settings

    if not args.file.is_file():
        print(json.dumps({"kind": None, "error": f"no such file: {args.file}"}))
        sys.exit(1)
    settings = get_settings()
    profile = asyncio.run(_load_profile(settings, args.profile)) if args.profile else None
    if isinstance(profile, str):
        print(json.dumps({"kind": None, "error": profile}))
        sys.exit(1)
    region = (args.region or (profile and profile.region) or settings.default_region).upper()
    stored = asyncio.run(_stored_profiles(settings)) if args.suggest and not profile else ()
    options = Options(region, args.profile, date.today(), profile, stored)
    answer, status = check_file(args.file, options)
    print(json.dumps(answer, ensure_ascii=False, indent=1))
    sys.exit(status)
