"""A corrected version arriving is in the audit trail: who sent it (the sheet's uploader, or
the system for an LIS message), which version it replaces and what changed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date

from contracts.v1 import IngestBatch
from devtools.demo import demo_rows, sheet_of
from services.infra.broker import publish
from services.infra.database import Database
from services.infra.service import Resources
from services.ingest.main import create_app
from tests.support import eventually, lis_message


async def upload(resources: Resources, data: bytes, uploaded_by: str) -> str:
    """What the gateway does on upload: store the sheet, record the batch, ask for ingest."""
    batch_id = uuid.uuid4().hex
    file_id = await resources.files.put("results.xlsx", data, {"kind": "upload"})
    await resources.db.batches.insert_one(
        {
            "_id": batch_id,
            "lab_id": "demo-lab",
            "filename": "results.xlsx",
            "file_id": file_id,
            "uploaded_by": uploaded_by,
            "status": "received",
            "correlation_id": batch_id,
        }
    )
    await publish(
        resources.broker,
        IngestBatch(batch_id=batch_id, lab_id="demo-lab", file_id=file_id, correlation_id=batch_id),
    )
    return batch_id


async def test_a_corrected_sheet_is_audited_once_as_its_uploader(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    rows = demo_rows(2, sample_date=date(2026, 11, 20))
    corrected = [list(row) for row in rows]
    corrected[4][7] = "9.9"  # the first patient's potassium
    resources = make_resources("ingest")
    async with create_app(resources):
        first = await upload(resources, sheet_of(rows), "ann")
        await eventually(lambda: db.batches.find_one({"_id": first, "status": "ingested"}))
        second = await upload(resources, sheet_of(corrected), "bob")
        await eventually(lambda: db.batches.find_one({"_id": second, "status": "ingested"}))

    [entry] = await db.audit.find({"action": "report.corrected"}).to_list()
    v2 = await db.reports.find_one({"version": 2})
    assert v2 is not None
    assert (entry["actor"], entry["role"], entry["object"]) == ("admin:bob", "staff", v2["_id"])
    assert entry["detail"]["replaces"] == v2["previous_id"]
    assert entry["detail"]["changed"] == ["Potassium"]


async def test_a_corrected_lis_message_is_audited_as_the_system(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    resources = make_resources("ingest")
    async with create_app(resources):
        await publish(resources.broker, lis_message())
        await eventually(lambda: db.reports.find_one({"version": 1}))
        corrected = [{"test": "HbA1c", "value": "41", "unit": "mmol/mol", "flag": ""}]
        await publish(resources.broker, lis_message(message_id="LIS-2", results=corrected))
        entry = await eventually(lambda: db.audit.find_one({"action": "report.corrected"}))
    assert (entry["actor"], entry["role"], entry["outcome"]) == ("system", "system", "success")
    assert entry["detail"]["source"] == {
        "kind": "lis",
        "message_id": "LIS-2",
        "accession": "ACC-1",
    }
