"""Render handlers: fill the report's template, store the .docx, ask for the PDF."""

from __future__ import annotations

import structlog

from contracts.v1 import ConvertReport, RenderReport, ReportStatus, utcnow
from services.infra import report_status
from services.infra.broker import publish
from services.infra.crash_points import crash_point
from services.infra.documents import ReportDocument
from services.infra.errors import PermanentError
from services.infra.service import Resources
from services.infra.template_rules import TemplateRuleStore, choose_template
from services.infra.verification import Verification, short_reference, verification_url
from services.render import adapters, logic

log = structlog.get_logger()

TARGET = ReportStatus.RENDERED


class RenderHandlers:
    def __init__(self, resources: Resources, templates: adapters.Templates) -> None:
        self._resources = resources
        self.templates = templates
        self._rules = TemplateRuleStore(resources.db)
        settings = resources.settings
        self.lab = logic.Lab(settings.lab_name, settings.lab_address, settings.lab_phone)
        self._base_url = settings.public_base_url

    async def render_report(self, message: RenderReport) -> None:
        report = await self._resources.reports.get(message.report_id)
        if report_status.is_past(ReportStatus(report["status"]), TARGET):
            if report["status"] == TARGET:
                # A crash may have come between the status update and the publish.
                await self._request_convert(report)
            log.info("report.render_skipped", status=report["status"])
            return

        name = logic.template_name(report)
        if name == logic.DEFAULT_TEMPLATE and report.get("template_version") is None:
            # Not rendered before: the lab's choice rules pick by tests and language.
            name = choose_template(await self._rules.get(), report) or name
        try:
            renderer = await self.templates.get(name, report.get("template_version"))
            context = logic.build_context(report, self.lab, utcnow().date())
        except adapters.UnknownTemplateError:
            raise PermanentError(f"unknown report template {name!r}") from None
        except logic.ReportDataError as error:
            raise PermanentError(f"report data cannot be printed: {error}") from None

        stored = await self._resources.files.find_for_report(report["_id"], "docx")
        file_id = stored[0] if stored else None
        if file_id is None:
            reference = short_reference(report["_id"])
            verification = Verification.of(verification_url(self._base_url, reference))
            try:
                data = await renderer.render(context, verification)
            except adapters.TemplateRenderError as error:
                # This report fails with the reason; the other reports of its batch go on.
                raise PermanentError(f"template {name!r}: {error}") from None
            crash_point("render.before_file_stored")
            file_id, _ = await self._resources.files.put_for_report(
                logic.docx_filename(report["_id"]),
                data,
                {
                    "kind": "docx",
                    "report_id": report["_id"],
                    "template": name,
                    "template_version": renderer.version,
                    "content_type": adapters.DOCX_CONTENT_TYPE,
                },
            )
            crash_point("render.after_file_stored")
        fields = {"docx_file_id": file_id, "template": name, "template_version": renderer.version}
        crash_point("render.before_status_update")
        # The status change and the ConvertReport it calls for go out together (the outbox).
        convert = ConvertReport(report_id=report["_id"], correlation_id=report["correlation_id"])
        if not await self._resources.reports.advance(
            report, TARGET, fields=fields, then=[convert], crash_at="render.after_status_update"
        ):
            # Someone moved it meanwhile (a concurrent delivery, a supersede): re-read.
            report = await self._resources.reports.get(report["_id"])
            if report["status"] != TARGET:
                log.info("report.render_discarded", status=report["status"])
                return
            await self._request_convert(report)  # the other delivery's may be in flight
        else:
            log.info("report.rendered", file_id=file_id, template=name)
        crash_point("render.before_ack")

    async def _request_convert(self, report: ReportDocument) -> None:
        await publish(
            self._resources.broker,
            ConvertReport(report_id=report["_id"], correlation_id=report["correlation_id"]),
        )

    async def give_up(self, message: RenderReport, reason: str) -> None:
        await self._resources.reports.fail(message.report_id, reason)
