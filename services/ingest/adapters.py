"""Ingest's outside world: uploaded sheets (checked by `sheet_guard`, read in a limited
subprocess by `sheet_reader`, laid out by `layout`) and the LIS messages it rejected. Reports
and batches are written through their owners, `services.infra.reports` and
`services.infra.batches`."""

from __future__ import annotations

from datetime import date
from typing import Any

from contracts.v1 import utcnow
from services.infra.database import Database
from services.infra.sheet_profiles import SheetProfile
from services.ingest import layout, preview, profiles, sheet_reader
from services.ingest.errors import SheetError

MAX_ROWS = 50_000


def read_sheet(data: bytes, filename: str, profile: SheetProfile | None = None) -> layout.Table:
    """The results table of an upload: header found (with the profile's column names and
    layout), merged cells filled, footers skipped."""
    return table_of(sheet_reader.read_workbook(data, filename), filename, profile)


def table_of(
    sheets: list[sheet_reader.RawSheet], filename: str, profile: SheetProfile | None = None
) -> layout.Table:
    """`read_sheet` of a workbook already read."""
    if not any(any(c is not None for c in row) for sheet in sheets for row in sheet.rows):
        raise SheetError(f"'{filename}' has no rows")
    layout_name = profile.layout if profile else "auto"
    table = layout.locate(sheets, filename, profiles.columns(profile), layout_name)
    if len(set(table.row_numbers)) > MAX_ROWS:
        raise SheetError(f"'{filename}' has more than {MAX_ROWS} rows; split it into batches")
    return table


def preview_sheet(
    data: bytes,
    filename: str,
    profile: SheetProfile | None,
    stored: list[SheetProfile],
    region: str,
    today: date,
) -> dict[str, Any]:
    """What reading the upload would make (`preview`), read exactly as for a real run; a
    sheet that cannot be read is a preview with its `error`. Nothing is stored."""
    try:
        sheets = sheet_reader.read_workbook(data, filename)
    except SheetError as error:
        return {**preview.of_error(str(error), profile), "suggested_profile": None}
    suggested = preview.suggestion(profile, stored, preview.header_cells(sheets))
    try:
        table = table_of(sheets, filename, profile)
        outcome = profiles.group(table, profile, region, today)
    except SheetError as error:
        return {**preview.of_error(str(error), profile), "suggested_profile": suggested}
    return {**preview.of_outcome(table, outcome, profile), "suggested_profile": suggested}


class RejectedMessages:
    """The owner of `rejected_messages`: LIS messages ingest could not use, and why."""

    def __init__(self, db: Database) -> None:
        self._collection = db.rejected_messages

    async def record(
        self, message_id: str, lab_id: str, accession: str, reason: str, correlation_id: str
    ) -> None:
        await self._collection.update_one(
            {"message_id": message_id, "lab_id": lab_id},
            {
                "$set": {"reason": reason, "accession": accession, "at": utcnow()},
                "$setOnInsert": {"correlation_id": correlation_id},
            },
            upsert=True,
        )
