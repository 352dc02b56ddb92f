"""Reading a report's PDF for anyone (staff or patient): the one place the file leaves the
store, and so the one place its integrity is checked.

The convert stage stores the SHA-256 of the PDF it made on the report (`pdf_sha256`). Every
read compares the stored file with it; a file that does not match (or a report without the
hash) is never served: the download is refused, the failure is logged as an error (no
patient data, only ids and hashes), audited as `report.integrity_failed` (counted in
`/metrics`), and staff see it in the report's audit trail.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import structlog
from aiohttp import web

from services.infra.audit import Audit
from services.infra.documents import AuditOutcome, ReportDocument
from services.infra.files import FileStore

log = structlog.get_logger()

INTEGRITY_FAILED = "report.integrity_failed"
REFUSAL = (
    "This report's file did not pass its integrity check, so it is not shown. "
    "The laboratory has been alerted; please contact them."
)


def matches(data: bytes, expected: Any) -> bool:
    """Whether `data` hashes to the stored `expected` SHA-256 (hex); no hash never matches."""
    if not isinstance(expected, str) or not expected:
        return False
    return hmac.compare_digest(hashlib.sha256(data).hexdigest(), expected.lower())


async def verified_pdf(
    files: FileStore, audit: Audit, report: ReportDocument, actor: str, client: dict[str, Any]
) -> bytes:
    """The report's PDF, checked against its stored SHA-256; HTTP 500 (refused) otherwise."""
    stored = await files.get(str(report["pdf_file_id"]))
    expected = report.get("pdf_sha256")
    if matches(stored.data, expected):
        return stored.data
    actual = hashlib.sha256(stored.data).hexdigest()
    log.error(
        "report.pdf_integrity_failed",
        report_id=report["_id"],
        pdf_file_id=str(report["pdf_file_id"]),
        expected_sha256=expected or "",
        actual_sha256=actual,
    )
    detail = {
        **client,
        "pdf_file_id": str(report["pdf_file_id"]),
        "expected_sha256": expected or "",
        "actual_sha256": actual,
    }
    await audit.write(actor, INTEGRITY_FAILED, report["_id"], detail, outcome=AuditOutcome.FAILURE)
    raise web.HTTPInternalServerError(text=REFUSAL)
