"""The public verification page, `/v/<reference>`: anyone holding a printed or forwarded
report (a patient, an employer, a clinic) checks that it is genuine.

The page says whether the reference is a report this lab issued, on what date, which version,
whether a newer version replaced it, and the SHA-256 of the issued file; never any patient
data. Uploading a PDF there answers whether this exact file was issued by the lab. Nothing is
written and nothing is logged but the outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web

from contracts.v1 import ReportStatus
from services.gateway.web import render
from services.infra.service import Resources
from services.infra.verification import REFERENCE_LENGTH

log = structlog.get_logger()

REFERENCE = re.compile(rf"[0-9A-Fa-f]{{{REFERENCE_LENGTH}}}")
NOT_ISSUED = {ReportStatus.RECEIVED, ReportStatus.RENDERED, ReportStatus.FAILED}
FIELDS = {"status": 1, "version": 1, "history": 1, "pdf_sha256": 1, "lab_id": 1, "source_key": 1}


def issued_on(report: dict[str, Any]) -> datetime | None:
    """When the report's PDF was made (its `converted` step)."""
    for step in report.get("history") or []:
        if step.get("status") == ReportStatus.CONVERTED:
            at = step.get("at")
            return at if isinstance(at, datetime) else None
    return None


class VerifyHandlers:
    def __init__(self, resources: Resources) -> None:
        self._reports = resources.db.reports
        self._settings = resources.settings

    async def _find(self, reference: str) -> dict[str, Any] | None:
        if not REFERENCE.fullmatch(reference):
            return None
        prefix = re.escape(reference.lower())
        report = await self._reports.find_one({"_id": {"$regex": f"^{prefix}"}}, FIELDS)
        if report is None or not report.get("pdf_sha256"):
            return None
        if ReportStatus(report["status"]) in NOT_ISSUED:
            return None
        return report

    async def _answer(self, report: dict[str, Any] | None) -> dict[str, Any]:
        if report is None:
            return {"genuine": False}
        newer = await self._reports.find_one(
            {
                "lab_id": report["lab_id"],
                "source_key": report["source_key"],
                "version": {"$gt": report.get("version", 1)},
                "pdf_sha256": {"$exists": True},
            },
            {"history": 1, "version": 1},
            sort=[("version", -1)],
        )
        return {
            "genuine": True,
            "issued": issued_on(report),
            "version": report.get("version", 1),
            "withdrawn": report["status"] == ReportStatus.WITHDRAWN,
            "replaced": newer is not None or report["status"] == ReportStatus.SUPERSEDED,
            "replaced_on": issued_on(newer) if newer else None,
            "newer_version": newer.get("version") if newer else None,
            "sha256": report["pdf_sha256"],
        }

    def _page(self, request: web.Request, reference: str, **context: Any) -> web.Response:
        return render(
            request,
            "verify.html",
            {
                "reference": reference.upper()[:REFERENCE_LENGTH],
                "lab_phone": self._settings.lab_phone,
                **context,
            },
        )

    async def page(self, request: web.Request) -> web.StreamResponse:
        reference = request.match_info["reference"]
        answer = await self._answer(await self._find(reference))
        log.info("verify.checked", genuine=answer["genuine"])
        return self._page(request, reference, answer=answer)

    async def check_file(self, request: web.Request) -> web.StreamResponse:
        """`file`: a PDF; whether this exact file is the one issued under the reference."""
        reference = request.match_info["reference"]
        report = await self._find(reference)
        form = await request.post()
        field = form.get("file")
        if not isinstance(field, web.FileField):
            return self._page(
                request, reference, answer=await self._answer(report), file_error=True
            )
        data = await asyncio.to_thread(field.file.read)
        digest = hashlib.sha256(data).hexdigest()
        match = report is not None and report["pdf_sha256"] == digest
        log.info("verify.file_checked", match=match)
        return self._page(
            request, reference, answer=await self._answer(report), file_match=match, digest=digest
        )


def setup_verify(app: web.Application, resources: Resources) -> None:
    handlers = VerifyHandlers(resources)
    app.router.add_get("/v/{reference}", handlers.page)
    app.router.add_post("/v/{reference}", handlers.check_file)
