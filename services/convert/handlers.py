"""Convert handlers: a rendered report's .docx becomes its PDF, then the patient is notified."""

from __future__ import annotations

import time

import structlog
from gridfs.errors import NoFile

from contracts.v1 import ConvertReport, NotifyPatient, ReportStatus
from services.convert import logic
from services.convert.adapters import DocumentRejectedError, LibreOffice
from services.infra.broker import publish
from services.infra.crash_points import crash_point
from services.infra.documents import ReportDocument
from services.infra.errors import PermanentError
from services.infra.metrics import CONVERSION_SECONDS, CONVERSIONS
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
            crash_point("convert.after_file_stored")
        else:
            # A PDF stored just before a crash: keep it rather than make a second one.
            pdf_file_id, sha256 = stored[0], str(stored[1]["sha256"])
            log.info("report.pdf_reused", pdf_file_id=pdf_file_id)

        fields = {"pdf_file_id": pdf_file_id, "pdf_sha256": sha256}
        crash_point("convert.before_status_update")
        # The status change and the NotifyPatient it calls for go out together (the outbox).
        notify = NotifyPatient(report_id=report["_id"], correlation_id=report["correlation_id"])
        if not await reports.advance(
            report,
            ReportStatus.CONVERTED,
            fields=fields,
            then=[notify],
            crash_at="convert.after_status_update",
        ):
            current = ReportStatus((await reports.get(report["_id"]))["status"])
            if current is not ReportStatus.CONVERTED:
                log.info("report.convert_superseded", status=current.value)
                return
            await self._notify(report)  # the other delivery's may be in flight
        log.info("report.converted", pdf_file_id=pdf_file_id)
        crash_point("convert.before_ack")

    async def give_up(self, message: ConvertReport, reason: str) -> None:
        await self._resources.reports.fail(message.report_id, reason)

    async def _convert_and_store(self, report: ReportDocument) -> tuple[str, str]:
        try:
            docx = await self._resources.files.get(str(report["docx_file_id"]))
        except NoFile:
            raise PermanentError("the rendered .docx is missing from the file store") from None
        metadata = logic.pdf_metadata(report)
        started = time.perf_counter()
        try:
            pdf = await self._office.convert(
                docx.data,
                title=metadata.title,
                subject=metadata.subject,
                author=self._resources.settings.lab_name,
                language=logic.report_language(report),
            )
        except DocumentRejectedError as error:
            CONVERSIONS.labels("rejected").inc()
            raise PermanentError(f"the report's .docx cannot be converted: {error}") from error
        except Exception:
            CONVERSIONS.labels("failed").inc()
            raise
        CONVERSIONS.labels("converted").inc()
        CONVERSION_SECONDS.observe(time.perf_counter() - started)
        sha256 = logic.sha256_hex(pdf)
        crash_point("convert.before_file_stored")
        pdf_file_id, kept = await self._resources.files.put_for_report(
            logic.pdf_filename(report["_id"]),
            pdf,
            logic.pdf_file_metadata(report["_id"], sha256),
        )
        return pdf_file_id, str(kept["sha256"])

    async def _notify(self, report: ReportDocument) -> None:
        await publish(
            self._resources.broker,
            NotifyPatient(report_id=report["_id"], correlation_id=report["correlation_id"]),
        )
