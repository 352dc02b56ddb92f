"""Receipt PINs through ingest: from a sheet column or an LIS message to a keyed hash on the
report, and nowhere in the database in clear."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from bson import ObjectId
from openpyxl import Workbook

from services.infra import second_check
from services.infra.broker import publish
from services.infra.database import Database
from services.infra.service import Resources
from services.ingest.main import create_app
from tests.integration.ingest.test_ingest_service import finished, upload
from tests.support import eventually, lis_message

PIN = "730519"
OTHER_PIN = "8164"
HEADER = ["Patient ID", "Name", "Date of birth", "Phone", "Sample date", "Test", "Value", "PIN"]


def sheet_with_pins() -> bytes:
    sampled = (date.today() - timedelta(days=1)).isoformat()
    rows = [
        ["P1", "Ann Smith", "1980-01-15", "07400 100001", sampled, "Haemoglobin", "13.2", PIN],
        ["P1", "Ann Smith", "1980-01-15", "07400 100001", sampled, "CRP", "4", PIN],
        ["P2", "Bo Jones", "1975-06-02", "07400 100002", sampled, "CRP", "2", "81-64"],
        ["P3", "Cy Brown", "1990-09-09", "07400 100003", sampled, "CRP", "3", "17"],  # bad PIN
    ]
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


async def places_holding(db: Database, digits: str, *, except_file: str | None = None) -> list[str]:
    """Every collection whose documents hold `digits` as a number of their own (not inside a
    longer run of hex digits, as in a hash), ignoring the chunks of `except_file`."""
    alone = re.compile(rf"(?<![0-9A-Fa-f]){digits}(?![0-9A-Fa-f])")
    found = []
    for name in await db.list_collection_names():
        query: dict[str, Any] = {}
        if name == "fs.chunks" and except_file:
            query = {"files_id": {"$ne": ObjectId(except_file)}}
        async for document in db[name].find(query):
            text = json.dumps(
                document, default=lambda v: v.hex() if isinstance(v, bytes) else str(v)
            )
            if alone.search(text) or (
                isinstance(document.get("data"), bytes) and digits.encode() in document["data"]
            ):
                found.append(name)
                break
    return found


async def test_a_sheets_pin_column_is_kept_only_as_a_keyed_hash(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    resources = make_resources("ingest")
    async with create_app(resources):
        batch_id = await upload(resources, sheet_with_pins())
        batch = await eventually(lambda: finished(db, batch_id))
    assert batch["status"] == "ingested"
    reports = {r["patient"]["patient_id"]: r async for r in db.reports.find({"batch_id": batch_id})}
    secret = resources.settings.second_check_secret
    assert reports["P1"]["pin_hash"] == second_check.keyed_hash(secret, "pin", PIN)
    assert reports["P2"]["pin_hash"] == second_check.keyed_hash(secret, "pin", OTHER_PIN)
    assert "P3" not in reports
    assert batch["rejected_rows"] == [{"row": 5, "reason": "PIN must be 4 to 8 digits"}]
    # Nowhere in clear: reports, batches, audit, notifications... (the uploaded workbook
    # itself is kept in GridFS as the lab sent it).
    upload_file = str(batch["file_id"])
    assert "reports" in await places_holding(db, "1975")  # the search does see what is there
    assert await places_holding(db, PIN, except_file=upload_file) == []
    assert await places_holding(db, OTHER_PIN, except_file=upload_file) == []


async def test_an_lis_messages_pin_is_kept_only_as_a_keyed_hash(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    resources = make_resources("ingest")
    async with create_app(resources):
        await publish(resources.broker, lis_message(receipt_pin=PIN))
        report = await eventually(lambda: db.reports.find_one({"source.accession": "ACC-1"}))
    secret = resources.settings.second_check_secret
    assert report["pin_hash"] == second_check.keyed_hash(secret, "pin", PIN)
    assert await places_holding(db, PIN) == []
