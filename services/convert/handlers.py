"""Convert handlers: a rendered report's .docx becomes its PDF, then the patient is notified."""

from __future__ import annotations

import structlog
from gridfs.errors import NoFile

from contracts.v1 import ConvertReport, NotifyPatient, ReportStatus
from services.convert import logic
from services.convert.adapters import DocumentRejectedError, LibreOffice
from services.infra.broker import publish
from services.infra.documents import ReportDocument
from services.infra.errors import PermanentError
from services.infra.report_status import is_past
from services.infra.service import Resources

log = structlog.get_logger()


class ConvertHandlers:
    def __init__(self, resources: Resources, office: LibreOffice) -> None:
        self._resources = resources
        self._office = office

    async def convert_report(self, message: ConvertReport) -> None:
        reports = self._resources.reports
        report = await reports.get(message.report_id)
        status = ReportStatus(report["status"])
        if is_past(status, ReportStatus.CONVERTED):
            # Redelivered: the PDF exists. Publish again in case we crashed before it went out.
            log.info("report.convert_skipped", status=status.value)
            if status is ReportStatus.CONVERTED:
                await self._notify(report)
            return
        if status is not ReportStatus.RENDERED or not report.get("docx_file_id"):
            raise PermanentError(f"the report has no rendered .docx (status {status.value})")

        stored = await self._resources.files.find_for_report(report["_id"], "pdf")
        if stored is None:
            pdf_file_id, sha256 = await self._convert_and_store(report)
        else:
            # A PDF stored just before a crash: keep it rather than make a second one.
            pdf_file_id, sha256 = stored[0], str(stored[1]["sha256"])
            log.info("report.pdf_reused", pdf_file_id=pdf_file_id)

        fields = {"pdf_file_id": pdf_file_id, "pdf_sha256": sha256}
        if not await reports.advance(report, ReportStatus.CONVERTED, fields=fields):
            current = ReportStatus((await reports.get(report["_id"]))["status"])
            if current is not ReportStatus.CONVERTED:
                log.info("report.convert_superseded", status=current.value)
                return
        log.info("report.converted", pdf_file_id=pdf_file_id)
        await self._notify(report)

    async def give_up(self, message: ConvertReport, reason: str) -> None:
        await self._resources.reports.fail(message.report_id, reason)

    async def _convert_and_store(self, report: ReportDocument) -> tuple[str, str]:
        try:
            docx = await self._resources.files.get(str(report["docx_file_id"]))
        except NoFile:
            raise PermanentError("the rendered .docx is missing from the file store") from None
        metadata = logic.pdf_metadata(report)
        try:
            pdf = await self._office.convert(
                docx.data,
                title=metadata.title,
                subject=metadata.subject,
                author=self._resources.settings.lab_name,
                language=logic.report_language(report),
            )
        except DocumentRejectedError as error:
            raise PermanentError(f"the report's .docx cannot be converted: {error}") from error
        sha256 = logic.sha256_hex(pdf)
        pdf_file_id = await self._resources.files.put(
            logic.pdf_filename(report["_id"]),
            pdf,
            logic.pdf_file_metadata(report["_id"], sha256),
        )
        return pdf_file_id, sha256

    async def _notify(self, report: ReportDocument) -> None:
        await publish(
            self._resources.broker,
            NotifyPatient(report_id=report["_id"], correlation_id=report["correlation_id"]),
        )
