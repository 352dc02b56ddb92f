"""Ingest's outside world: uploaded sheets (openpyxl parses their XML through defusedxml:
entity bombs, XXE) and the LIS messages it rejected. Reports and batches are written through
their owners, `services.infra.reports` and `services.infra.batches`."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

import openpyxl.xml
import pandas as pd
from defusedxml.common import DefusedXmlException

from contracts.v1 import utcnow
from services.infra.database import Database
from services.ingest.logic import SheetError

if not openpyxl.xml.DEFUSEDXML:  # pragma: no cover - guarded by the dependency list
    raise RuntimeError("defusedxml must be installed: openpyxl would parse hostile XML")

MAX_ROWS = 50_000


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, kind):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def read_sheet(data: bytes, filename: str) -> tuple[list[object], list[Sequence[object]]]:
    """The header row and the data rows of the first worksheet (or of a CSV file)."""
    try:
        if filename.lower().endswith(".csv"):
            frame = pd.read_csv(
                io.BytesIO(data), header=None, dtype=str, keep_default_na=False, nrows=MAX_ROWS + 1
            )
        else:
            frame = pd.read_excel(
                io.BytesIO(data), header=None, dtype=object, engine="openpyxl", nrows=MAX_ROWS + 1
            )
    except Exception as error:  # openpyxl wraps what went wrong in many kinds of error
        if _caused_by(error, DefusedXmlException):
            raise SheetError(
                f"'{filename}' contains XML constructs that are not allowed (entity or DTD "
                "declarations); save it again from Excel and upload that copy"
            ) from None
        if isinstance(error, zipfile.BadZipFile | ValueError | KeyError | OSError):
            raise SheetError(f"'{filename}' is not a readable .xlsx workbook ({error})") from None
        raise SheetError(f"'{filename}' could not be read: {type(error).__name__}") from None
    if frame.empty:
        raise SheetError(f"'{filename}' has no rows")
    if len(frame) - 1 > MAX_ROWS:  # the first row is the header
        raise SheetError(f"'{filename}' has more than {MAX_ROWS} rows; split it into batches")
    rows = frame.astype(object).where(frame.notna(), None).values.tolist()
    return rows[0], rows[1:]


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
