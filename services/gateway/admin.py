"""Admin pages: dashboard, upload, one batch, reports (the list and one report in detail) and
the development SMS outbox. Login is in `accounts`, the batch page's live counts in `live`."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import structlog
from aiohttp import web

from contracts.v1 import IngestBatch, utcnow
from services.gateway import logic, timeline
from services.gateway.actions import new_request_id
from services.gateway.permissions import Action, allowed, role_of
from services.gateway.queries import (
    BatchFilter,
    BatchQueries,
    NotificationQueries,
    OutboxQueries,
    ReportFilter,
    ReportQueries,
    page_number,
)
from services.gateway.report_files import verified_pdf
from services.gateway.web import (
    ROLE,
    USER,
    client_detail,
    own_batches_only,
    pdf_response,
    render,
    sees_batch,
)
from services.infra import report_status
from services.infra.audit import Audit, staff
from services.infra.batches import Batches
from services.infra.broker import publish
from services.infra.dead_letters import DeadLetters
from services.infra.documents import BatchDocument
from services.infra.service import Resources

log = structlog.get_logger()


class UploadRefused(Exception):
    """The upload is not a sheet we can read: the text says why, for staff."""


async def accept_upload(
    resources: Resources, batches: Batches, request: web.Request, missing: str
) -> BatchDocument:
    """The sheet in the request's multipart field `file`, stored and handed to ingest as a
    new batch; UploadRefused (`missing` when there is no file) otherwise. Audited either way."""
    audit, actor, client = Audit(resources.db), staff(request[USER]), client_detail(request)
    form = await request.post()
    field = form.get("file")
    filename, problem = "", missing
    if isinstance(field, web.FileField) and field.filename:
        filename = logic.clean_filename(field.filename)
        data = await asyncio.to_thread(field.file.read)
        problem = logic.upload_problem(filename, data) or ""
        if not problem:
            batch = await start_batch(
                resources, batches, filename=filename, data=data, uploaded_by=request[USER]
            )
            detail = {"filename": filename, "bytes": len(data), **client}
            await audit.write(actor, "batch.uploaded", None, detail, object=batch["_id"])
            return batch
    detail = {"filename": filename, "refused": problem, **client}
    await audit.write(actor, "batch.upload_refused", None, detail, outcome="refused")
    raise UploadRefused(problem)


async def start_batch(
    resources: Resources, batches: Batches, *, filename: str, data: bytes, uploaded_by: str
) -> BatchDocument:
    """Store an uploaded sheet, record its batch and hand it to ingest."""
    file_id = await resources.files.put(
        filename, data, {"kind": "upload", "content_type": logic.upload_content_type(filename)}
    )
    batch = await batches.create(
        lab_id=resources.settings.lab_id,
        filename=filename,
        file_id=file_id,
        uploaded_by=uploaded_by,
    )
    try:
        await publish(
            resources.broker,
            IngestBatch(
                correlation_id=batch["correlation_id"],
                batch_id=batch["_id"],
                lab_id=batch["lab_id"],
                file_id=file_id,
            ),
        )
    except Exception:
        # Without the message nobody would ever read the file: say so on the batch page.
        await batches.fail(batch["_id"], "Could not hand the file to processing; upload it again.")
        raise
    log.info("batch.uploaded", batch_id=batch["_id"], correlation_id=batch["correlation_id"])
    return batch


class AdminHandlers:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._settings = resources.settings
        self._batch_writes = Batches(resources.db)
        self._batches = BatchQueries(resources.db)
        self._reports = ReportQueries(resources.db)
        self._notifications = NotificationQueries(resources.db)
        self._outbox = OutboxQueries(resources.db)
        self._audit = Audit(resources.db)
        self._dead_letters = DeadLetters(resources.db)

    # --- dashboard and upload ------------------------------------------------------------

    async def dashboard(self, request: web.Request) -> web.StreamResponse:
        filters = BatchFilter.from_query(request.query, uploader=own_batches_only(request))
        sees_reports = allowed(role_of(request.get(ROLE)), Action.VIEW_REPORTS)
        page = page_number(request.query) or 1
        batches, has_next = await self._batches.page(filters, page)
        counts = await self._batches.status_counts([b["_id"] for b in batches])
        rows = [
            {"batch": b, "counts": logic.batch_count_summary(b, counts.get(b["_id"], {}))}
            for b in batches
        ]

        def page_link(number: int) -> str:
            return "/?" + urlencode({**filters.params(), "page": number})

        return render(
            request,
            "dashboard.html",
            {
                "rows": rows,
                "filters": filters,
                "statuses": logic.BATCH_STATUSES,
                "page": page,
                "prev_link": page_link(page - 1) if page > 1 else None,
                "next_link": page_link(page + 1) if has_next else None,
                # Dead letters wait for a person: every role that may act on them sees them.
                "dead_letters": await self._dead_letters.counts() if sees_reports else {},
                "stuck": await self._reports.count_stuck() if sees_reports else 0,
            },
        )

    async def upload_form(self, request: web.Request) -> web.StreamResponse:
        return render(request, "upload.html", {"error": ""})

    async def upload(self, request: web.Request) -> web.StreamResponse:
        try:
            batch = await accept_upload(
                self._resources,
                self._batch_writes,
                request,
                missing="Choose a .xlsx or .csv file to upload.",
            )
        except UploadRefused as refused:
            return render(request, "upload.html", {"error": str(refused)}, status=400)
        raise web.HTTPSeeOther(f"/batches/{batch['_id']}")

    # --- one batch -----------------------------------------------------------------------

    async def batch(self, request: web.Request) -> web.StreamResponse:
        batch_id = request.match_info["batch_id"]
        batch = await self._batches.get(batch_id)
        if batch is None or not sees_batch(request, batch):
            raise web.HTTPNotFound(text="No such batch.")
        counts = await self._batches.status_counts([batch_id])
        summary = logic.batch_count_summary(batch, counts[batch_id])
        failed = await self._batches.failed_reports(batch_id)
        duplicates = batch.get("duplicates")
        return render(
            request,
            "batch.html",
            {
                "batch": batch,
                "counts": summary,
                "failed": failed,
                "waiting": await self._reports.waiting(batch_id),
                "duplicate_rows": duplicates if isinstance(duplicates, list) else [],
            },
        )

    # --- reports and outbox --------------------------------------------------------------

    async def reports(self, request: web.Request) -> web.StreamResponse:
        filters = ReportFilter.from_query(request.query)
        page = page_number(request.query) or 1
        rows, has_next = await self._reports.page(filters, page)

        def page_link(number: int) -> str:
            return "/reports?" + urlencode({**filters.params(), "page": number})

        return render(
            request,
            "reports.html",
            {
                "rows": rows,
                "filters": filters,
                "statuses": logic.STATUS_ORDER,
                "page": page,
                "prev_link": page_link(page - 1) if page > 1 else None,
                "next_link": page_link(page + 1) if has_next else None,
            },
        )

    async def report(self, request: web.Request) -> web.StreamResponse:
        """One report for lab staff: patient, results, timeline, SMS and portal activity."""
        report = await self._reports.detail(request.match_info["report_id"])
        if report is None:
            return render(
                request,
                "error.html",
                {"title": "Report not found", "message": "There is no report with this id."},
                status=404,
            )
        # Staff reading lab data is traceable; written before anything is shown.
        await self._audit.write(
            staff(request[USER]), "admin.report_opened", report["_id"], client_detail(request)
        )
        source = timeline.report_source(report)
        batch = await self._batches.get(source["batch_id"]) if source["batch_id"] else None
        limit = logic.REPORT_AUDIT_LIMIT
        portal, portal_more = await self._audit.portal_events(report["_id"], limit)
        staff_access, staff_more = await self._audit.staff_events(report["_id"], limit)
        notifications = await self._notifications.for_report(report["_id"])
        return render(
            request,
            "report.html",
            {
                "report": report,
                "patient": report.get("patient") or {},
                "source": source,
                "batch_name": batch["filename"] if batch else source["batch_id"],
                "timeline": timeline.timeline(report, notifications, [*portal, *staff_access]),
                "versions": await self._reports.versions(report),
                "request_id": new_request_id(),
                "notifications": notifications,
                "portal_events": timeline.audit_rows(portal),
                "portal_more": portal_more,
                "staff_events": timeline.audit_rows(staff_access),
                "staff_more": staff_more,
                "audit_limit": logic.REPORT_AUDIT_LIMIT,
                # An SMS held by quiet hours (`sms_due`) is waiting by design, not stuck.
                "stuck": not report.get("sms_due")
                and report_status.is_stuck(report["status"], report["updated_at"], utcnow()),
            },
        )

    async def report_pdf(self, request: web.Request) -> web.StreamResponse:
        report = await self._reports.get(request.match_info["report_id"])
        if report is None or not report.get("pdf_file_id"):
            raise web.HTTPNotFound(text="No PDF for this report.")
        actor, client = staff(request[USER]), client_detail(request)
        data = await verified_pdf(self._resources.files, self._audit, report, actor, client)
        download = request.query.get("download") == "1"
        action = "report.downloaded" if download else "report.viewed"
        await self._audit.write(actor, action, report["_id"], client)
        return pdf_response(data, report.get("sample_date"), download=download)

    async def outbox(self, request: web.Request) -> web.StreamResponse:
        if self._settings.sms_provider != "outbox":
            raise web.HTTPNotFound(text="The development SMS outbox is not in use.")
        messages = [
            {**message, "link": logic.first_link(str(message.get("body", "")))}
            for message in await self._outbox.recent()
        ]
        return render(request, "outbox.html", {"messages": messages})


def setup_admin(app: web.Application, resources: Resources) -> None:
    handlers = AdminHandlers(resources)
    r = app.router
    r.add_get("/", handlers.dashboard)
    r.add_get("/upload", handlers.upload_form)
    r.add_post("/upload", handlers.upload)
    r.add_get("/batches/{batch_id}", handlers.batch)
    r.add_get("/reports", handlers.reports)
    r.add_get("/reports/{report_id}", handlers.report)
    r.add_get("/reports/{report_id}/report.pdf", handlers.report_pdf)
    r.add_get("/outbox", handlers.outbox)
