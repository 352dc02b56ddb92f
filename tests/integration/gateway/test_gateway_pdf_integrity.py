"""A report's PDF is served only when it is the very file that was issued: its SHA-256 is
checked on every read, by staff and by the patient; a tampered file is refused, logged and
audited, and counted in the metrics."""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from typing import Any

from aiohttp.test_utils import TestClient
from pypdf import PdfWriter

from contracts.v1 import utcnow
from services.gateway.ops import Stats
from services.gateway.report_files import INTEGRITY_FAILED
from services.infra.database import Database
from services.infra.service import Resources
from services.infra.tokens import new_token, token_hash
from tests.support import csrf_from, report_document


def a_pdf(size: int) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=size, height=size)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


async def stored_report(resources: Resources, *, tampered: bool) -> tuple[str, str]:
    """A notified report whose stored PDF is (or is not) the one whose hash was recorded."""
    issued = a_pdf(200)
    stored = a_pdf(300) if tampered else issued
    report_id, token = uuid.uuid4().hex, new_token()
    pdf_id = await resources.files.put("r.pdf", stored, {"kind": "pdf", "report_id": report_id})
    await resources.db.reports.insert_one(
        report_document(
            report_id=report_id,
            status="notified",
            patient={"name": "Ada Example", "date_of_birth": "1980-05-17"},
            pdf_file_id=pdf_id,
            pdf_sha256=hashlib.sha256(issued).hexdigest(),
            access={
                "token_hash": token_hash(token),
                "expires_at": utcnow().replace(year=utcnow().year + 1),
                "failed_attempts": 0,
                "locked": False,
            },
        )
    )
    return report_id, token


async def test_staff_get_the_pdf_whose_hash_matches(
    admin: TestClient[Any, Any], resources: Resources
) -> None:
    report_id, _ = await stored_report(resources, tampered=False)
    response = await admin.get(f"/reports/{report_id}/report.pdf?download=1")
    assert response.status == 200
    assert (await response.read()).startswith(b"%PDF-")


async def test_a_tampered_pdf_is_refused_to_staff_audited_and_counted(
    admin: TestClient[Any, Any], resources: Resources, db: Database
) -> None:
    report_id, _ = await stored_report(resources, tampered=True)
    response = await admin.get(f"/reports/{report_id}/report.pdf?download=1")
    assert response.status == 500
    body = await response.text()
    assert "integrity check" in body and "%PDF" not in body

    entry = await db.audit.find_one({"action": INTEGRITY_FAILED, "report_id": report_id})
    assert entry is not None and entry["outcome"] == "failure"
    assert entry["actor"] == "admin:admin"
    assert await db.audit.count_documents({"action": "report.downloaded"}) == 0


async def test_a_tampered_pdf_is_refused_to_the_patient_too(
    client: TestClient[Any, Any], resources: Resources, db: Database
) -> None:
    report_id, token = await stored_report(resources, tampered=True)
    csrf_token = await csrf_from(client, f"/r/{token}")
    page = await client.post(
        f"/r/{token}",
        data={"csrf_token": csrf_token, "day": "17", "month": "5", "year": "1980"},
    )
    assert page.status == 200
    link = re.search(r'href="([^"]*report\.pdf)[^"]*"', await page.text())
    assert link is not None
    response = await client.get(link.group(1))
    assert response.status == 500
    assert "integrity check" in await response.text()
    entry = await db.audit.find_one({"action": INTEGRITY_FAILED, "report_id": report_id})
    assert entry is not None and entry["actor"] == "patient"


async def test_integrity_failures_show_in_the_metrics(
    admin: TestClient[Any, Any], resources: Resources
) -> None:
    report_id, _ = await stored_report(resources, tampered=True)
    assert (await admin.get(f"/reports/{report_id}/report.pdf")).status == 500
    text = await Stats(resources.db).metrics_text()
    assert "resultflow_pdf_integrity_failures 1" in text
