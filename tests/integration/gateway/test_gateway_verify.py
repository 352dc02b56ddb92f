"""The public verification page `/v/<reference>`: a genuine, a superseded and an unknown
reference, and "was this exact file issued by you?" for an uploaded PDF. No patient data."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Any

from aiohttp import FormData
from aiohttp.test_utils import TestClient

from contracts.v1 import utcnow
from services.infra.service import Resources
from services.infra.verification import short_reference
from tests.support import report_document

PDF = b"%PDF-1.7 issued report\n%%EOF"


async def issued(resources: Resources, *, version: int = 1, source_key: str = "") -> str:
    report_id = uuid.uuid4().hex
    when = utcnow() - timedelta(days=3 - version)
    fields: dict[str, Any] = {
        "report_id": report_id,
        "status": "superseded" if version == 1 and source_key else "notified",
        "patient": {"name": "Zelda Secretname"},
        "pdf_sha256": hashlib.sha256(PDF + str(version).encode()).hexdigest(),
        "version": version,
        "history": [{"status": "converted", "at": when, "reason": ""}],
    }
    document = report_document(**fields)
    if source_key:
        document["source_key"] = source_key
    await resources.db.reports.insert_one(document)
    return report_id


async def test_a_genuine_reference_says_issued_when_and_which_version_without_patient_data(
    client: TestClient[Any, Any], resources: Resources
) -> None:
    report_id = await issued(resources)
    response = await client.get(f"/v/{short_reference(report_id)}")
    page = await response.text()
    assert response.status == 200
    assert "Genuine" in page and "latest version" in page
    assert hashlib.sha256(PDF + b"1").hexdigest() in page
    assert "Zelda" not in page and "Secretname" not in page


async def test_a_superseded_reference_says_a_newer_version_replaced_it(
    client: TestClient[Any, Any], resources: Resources
) -> None:
    old = await issued(resources, version=1, source_key="lis:ACC-1")
    await issued(resources, version=2, source_key="lis:ACC-1")
    page = await (await client.get(f"/v/{short_reference(old)}")).text()
    assert "Genuine" in page and "a newer version (version 2" in page


async def test_an_unknown_reference_is_not_found(client: TestClient[Any, Any]) -> None:
    for reference in ("0123456789AB", "not-a-reference"):
        page = await (await client.get(f"/v/{reference}")).text()
        assert "Not found" in page and "Genuine" not in page


async def test_uploading_the_issued_file_says_yes_and_a_changed_file_says_no(
    client: TestClient[Any, Any], resources: Resources
) -> None:
    reference = short_reference(await issued(resources))
    for data, answer in (
        (PDF + b"1", "<strong>Yes:</strong>"),
        (PDF + b"X", "<strong>No:</strong>"),
    ):
        form = FormData()
        form.add_field("file", data, filename="report.pdf", content_type="application/pdf")
        response = await client.post(f"/v/{reference}", data=form)
        assert response.status == 200
        assert answer in await response.text()


async def test_a_report_of_a_few_megabytes_can_be_checked_and_a_huge_upload_is_refused(
    client: TestClient[Any, Any], resources: Resources
) -> None:
    report_id = await issued(resources)
    big = PDF + b"\n" + b"0" * (3 * 1024 * 1024)  # a letterhead's images and fonts
    digest = hashlib.sha256(big).hexdigest()
    await resources.db.reports.update_one({"_id": report_id}, {"$set": {"pdf_sha256": digest}})
    form = FormData()
    form.add_field("file", big, filename="report.pdf", content_type="application/pdf")
    response = await client.post(f"/v/{short_reference(report_id)}", data=form)
    assert response.status == 200 and "<strong>Yes:</strong>" in await response.text()

    form = FormData()
    form.add_field("file", b"0" * (17 * 1024 * 1024), filename="huge.pdf")
    assert (await client.post(f"/v/{short_reference(report_id)}", data=form)).status == 413
