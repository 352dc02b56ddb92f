"""A sheet's `Language` column through the ingest service: each report stores the patient's
language as one we send in, and an unknown code becomes the lab default with a note that
staff see on the report page and in the API."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO

from openpyxl import Workbook

from devtools.demo import HEADER, demo_rows
from services.infra.database import Database
from services.infra.service import Resources
from services.infra.settings import Settings
from services.ingest.main import create_app
from tests.integration.ingest.test_ingest_service import finished, upload
from tests.support import eventually

LANGUAGES = {"P10000": "fr-CA", "P10001": "xx", "P10002": "", "P10003": "SW"}


def sheet_with_languages() -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append([*HEADER, "Language"])
    for row in demo_rows(len(LANGUAGES)):
        sheet.append([*row, LANGUAGES[str(row[0])]])
    out = BytesIO()
    workbook.save(out)
    return out.getvalue()


async def test_the_language_column_chooses_each_report_s_language_and_notes_unknown_codes(
    make_resources: Callable[[str], Resources], db: Database, settings: Settings
) -> None:
    settings.default_language = "es"
    resources = make_resources("ingest")
    async with create_app(resources):
        batch_id = await upload(resources, sheet_with_languages())
        batch = await eventually(lambda: finished(db, batch_id))

    assert batch["status"] == "ingested" and batch["reports_created"] == 4
    reports = {
        r["patient"]["patient_id"]: r
        for r in await db.reports.find({"batch_id": batch_id}).to_list()
    }
    languages = {patient: r["patient"]["language"] for patient, r in reports.items()}
    assert languages == {"P10000": "fr", "P10001": "es", "P10002": "es", "P10003": "sw"}
    notes = {patient: r.get("language_note") for patient, r in reports.items()}
    assert notes == {
        "P10000": None,
        "P10001": "Language 'xx' is not one we send in; sent in Spanish.",
        "P10002": None,
        "P10003": None,
    }
