"""Admin pages: dashboard, upload, one batch, reports (the list and one report in detail) and
the development SMS outbox. Login is in `accounts`, the batch page's live counts in `live`,
taking an upload in `uploads`."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

import structlog
from aiohttp import web

from contracts.v1 import utcnow
from services.gateway import logic, timeline
from services.gateway.actions import new_request_id
from services.gateway.glance import Glance, glance_context
from services.gateway.ops import Cached
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
from services.gateway.uploads import UploadRefused, accept_upload
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
from services.infra.broker import NotAcceptingWork
from services.infra.dead_letters import DeadLetters
from services.infra.service import Resources
from services.infra.sheet_profiles import SheetProfiles
from services.infra.templates import TemplateStore

if TYPE_CHECKING:
    pass

log = structlog.get_logger()


class AdminHandlers:
    def __init__(self, resources: Resources, glance: Cached[Glance]) -> None:
        self._resources = resources
        self._settings = resources.settings
        self._batch_writes = Batches(resources.db)
        self._batches = BatchQueries(resources.db)
        self._reports = ReportQueries(resources.db)
        self._notifications = NotificationQueries(resources.db)
        self._outbox = OutboxQueries(resources.db)
        self._audit = Audit(resources.db)
        self._dead_letters = DeadLetters(resources.db)
        self._glance = glance

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
                **(glance_context(await self._glance.get()) if sees_reports else {}),
            },
        )

    async def upload_form(self, request: web.Request, error: str = "") -> web.StreamResponse:
        profiles = await SheetProfiles(self._resources.db).list(self._settings.lab_id)
        context = {"error": error, "profiles": profiles, "chosen": request.query.get("profile")}
        names = await TemplateStore(self._resources.db).names()
        context["templates"] = [t["name"] for t in names if t.get("active")]
        return render(request, "upload.html", context, status=400 if error else 200)

    async def upload(self, request: web.Request) -> web.StreamResponse:
        """In the dashboard an upload is previewed first unless staff untick it."""
        try:
            batch = await accept_upload(
                self._resources,
                self._batch_writes,
                request,
                missing="Choose a .xlsx or .csv file to upload.",
                preview_default=True,
            )
        except (UploadRefused, NotAcceptingWork) as refused:
            response = await self.upload_form(request, str(refused))
            response.set_status(503 if isinstance(refused, NotAcceptingWork) else 400)
            return response
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


def setup_admin(app: web.Application, resources: Resources, glance: Cached[Glance]) -> None:
    handlers = AdminHandlers(resources, glance)
    r = app.router
    r.add_get("/", handlers.dashboard)
    r.add_get("/upload", handlers.upload_form)
    r.add_post("/upload", handlers.upload)
    r.add_get("/batches/{batch_id}", handlers.batch)
    r.add_get("/reports", handlers.reports)
    r.add_get("/reports/{report_id}", handlers.report)
    r.add_get("/reports/{report_id}/report.pdf", handlers.report_pdf)
    r.add_get("/outbox", handlers.outbox)
