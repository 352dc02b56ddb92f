"""The admin JSON API, `/api/v1`: what staff do in the dashboard, for scripts and other
systems. Signed in by a bearer token (`resultflow tokens create USERNAME`) or the dashboard's
session; errors are `{"error", "detail"}` with the right status. The routes are
`api_routes.OPERATIONS`: `setup_api` registers them and `openapi.document` describes them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from services.gateway import logic, timeline
from services.gateway.actions import ActionRefused, StaffActions, new_request_id
from services.gateway.api_models import (
    ActionBody,
    BatchActionBody,
    BatchActionResult,
    BatchCreated,
    BatchList,
    BatchSummary,
    BatchView,
    LeftAlone,
    ReleaseMany,
    ReleaseManyResult,
    ReleaseOutcome,
    ReportList,
    ReportState,
    ReportSummary,
    ReportView,
    RulesSaved,
    TextAgainBody,
)
from services.gateway.api_routes import OPERATIONS
from services.gateway.audit_pages import audit_list
from services.gateway.batch_actions import BatchActions
from services.gateway.batch_preview import PreviewApi
from services.gateway.dead_letter_pages import DeadLetterApi
from services.gateway.glance import GlanceApi
from services.gateway.openapi import document
from services.gateway.profile_api import ProfileApi
from services.gateway.queries import (
    BatchFilter,
    BatchQueries,
    NotificationQueries,
    ReportFilter,
    ReportQueries,
    page_number,
)
from services.gateway.template_api import TemplateApi
from services.gateway.uploads import UploadRefused, accept_upload
from services.gateway.users import UserApi
from services.gateway.web import (
    USER,
    body,
    client_detail,
    json_error,
    ok,
    own_batches_only,
    sees_batch,
)
from services.infra.audit import Audit, staff
from services.infra.batches import Batches
from services.infra.broker import NotAcceptingWork
from services.infra.release_rules import ReleaseRules, ReleaseRuleStore
from services.infra.service import Resources

PREFIX = "/api/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiHandlers:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._batch_writes = Batches(resources.db)
        self._batches = BatchQueries(resources.db)
        self._reports = ReportQueries(resources.db)
        self._notifications = NotificationQueries(resources.db)
        self._audit = Audit(resources.db)
        self._actions = StaffActions(resources)
        self._batch_actions = BatchActions(resources)
        self._rules = ReleaseRuleStore(resources.db)
        self.users = UserApi(resources)
        self.dead_letters = DeadLetterApi(resources)
        self.templates = TemplateApi(resources)
        self.glance = GlanceApi(resources)
        self.profiles = ProfileApi(resources)
        self.preview = PreviewApi(resources)

    async def openapi(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(document(OPERATIONS, PREFIX))

    async def create_batch(self, request: web.Request) -> web.StreamResponse:
        """Straight to ingest unless `preview=true` (scripts and LIS-like senders)."""
        if not request.content_type.startswith("multipart/"):
            return json_error(
                400, "invalid", "Send the sheet as multipart/form-data, field `file`."
            )
        try:
            batch = await accept_upload(
                self._resources,
                self._batch_writes,
                request,
                missing="The multipart field `file` holds no file.",
            )
        except NotAcceptingWork as refused:
            return json_error(503, "unavailable", str(refused))
        except UploadRefused as refused:
            return json_error(400, "invalid", str(refused))
        return ok(BatchCreated(batch_id=batch["_id"]), status=202)

    async def get_batch(self, request: web.Request) -> web.StreamResponse:
        batch_id = request.match_info["batch_id"]
        batch = await self._batches.get(batch_id)
        if batch is None or not sees_batch(request, batch):
            return json_error(404, "not_found", f"There is no batch {batch_id}.")
        counts = await self._batches.status_counts([batch_id])
        return ok(BatchView.of(batch, counts[batch_id]))

    async def list_batches(self, request: web.Request) -> web.StreamResponse:
        page = page_number(request.query)
        if page is None:
            return json_error(400, "invalid", "`page` must be a whole number.")
        filters = BatchFilter.from_query(request.query, uploader=own_batches_only(request))
        batches, more = await self._batches.page(filters, page)
        counts = await self._batches.status_counts([b["_id"] for b in batches])
        items = [
            BatchSummary(
                id=b["_id"],
                filename=b["filename"],
                status=b["status"],
                uploaded_by=b["uploaded_by"],
                uploaded_at=b["uploaded_at"],
                reports=counts[b["_id"]],
            )
            for b in batches
        ]
        return ok(BatchList(items=items, page=page, next_page=page + 1 if more else None))

    async def list_reports(self, request: web.Request) -> web.StreamResponse:
        page = page_number(request.query)
        if page is None:
            return json_error(400, "invalid", "`page` must be a whole number.")
        rows, more = await self._reports.page(ReportFilter.from_query(request.query), page)
        items = [ReportSummary.of(row) for row in rows]
        return ok(ReportList(items=items, page=page, next_page=page + 1 if more else None))

    async def get_report(self, request: web.Request) -> web.StreamResponse:
        report = await self._reports.detail(request.match_info["report_id"])
        if report is None:
            return json_error(404, "not_found", "There is no report with this id.")
        await self._audit.write(
            staff(request[USER]), "api.report_read", report["_id"], client_detail(request)
        )
        staff_events, _ = await self._audit.staff_events(report["_id"], logic.REPORT_AUDIT_LIMIT)
        portal_events, _ = await self._audit.portal_events(report["_id"], logic.REPORT_AUDIT_LIMIT)
        notifications = await self._notifications.for_report(report["_id"])
        story = timeline.timeline(report, notifications, [*staff_events, *portal_events])
        versions = await self._reports.versions(report)
        view = ReportView.whole(report, versions, notifications, story)
        return ok(view)

    async def release(self, request: web.Request) -> web.StreamResponse:
        action: ActionBody = await body(request, ActionBody)
        report = await self._actions.release(
            request.match_info["report_id"], request[USER], action.reason, client_detail(request)
        )
        return ok(ReportState.of(report))

    async def release_many(self, request: web.Request) -> web.StreamResponse:
        wanted: ReleaseMany = await body(request, ReleaseMany)
        outcomes = []
        for report_id in dict.fromkeys(wanted.ids):
            try:
                await self._actions.release(
                    report_id, request[USER], wanted.reason, client_detail(request)
                )
                outcomes.append(ReleaseOutcome(id=report_id, released=True))
            except ActionRefused as refused:
                outcomes.append(ReleaseOutcome(id=report_id, released=False, detail=refused.reason))
        return ok(ReleaseManyResult(items=outcomes))

    async def withdraw(self, request: web.Request) -> web.StreamResponse:
        action: ActionBody = await body(request, ActionBody)
        report = await self._actions.withdraw(
            request.match_info["report_id"], request[USER], action.reason, client_detail(request)
        )
        return ok(ReportState.of(report))

    async def retry(self, request: web.Request) -> web.StreamResponse:
        report = await self._actions.retry(
            request.match_info["report_id"], request[USER], client_detail(request)
        )
        return ok(ReportState.of(report))

    async def resend(self, request: web.Request) -> web.StreamResponse:
        return await self._text_again(request, "resend")

    async def reissue_link(self, request: web.Request) -> web.StreamResponse:
        return await self._text_again(request, "link_reissued")

    async def _text_again(self, request: web.Request, why: str) -> web.StreamResponse:
        wanted: TextAgainBody = await body(request, TextAgainBody)
        report = await self._actions.text_again(
            request.match_info["report_id"],
            request[USER],
            client_detail(request),
            request_id=wanted.request_id or new_request_id(),
            phone=wanted.phone,
            why=why,
        )
        return ok(ReportState.of(report), status=202)

    async def batch_action(self, request: web.Request) -> web.StreamResponse:
        wanted: BatchActionBody = await body(request, BatchActionBody)
        batch_id, action = request.match_info["batch_id"], request.match_info["action"]
        user, client = request[USER], client_detail(request)
        if action == "retry-failed":
            outcome = await self._batch_actions.retry_failed(batch_id, user, client)
        elif action == "release-held":
            outcome = await self._batch_actions.release_held(batch_id, user, wanted.reason, client)
        else:
            outcome = await self._batch_actions.cancel(batch_id, user, wanted.reason, client)
        left = [LeftAlone(id=report_id, detail=why) for report_id, why in outcome.left]
        return ok(BatchActionResult(done=outcome.done, left=left))

    async def list_audit(self, request: web.Request) -> web.StreamResponse:
        return await audit_list(self._audit, request)

    async def get_rules(self, request: web.Request) -> web.StreamResponse:
        return ok(await self._rules.get(self._resources.settings.lab_id))

    async def put_rules(self, request: web.Request) -> web.StreamResponse:
        rules: ReleaseRules = await body(request, ReleaseRules)
        updated_at = await self._actions.save_release_rules(
            rules, request[USER], client_detail(request)
        )
        return ok(RulesSaved(updated_at=updated_at))


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Inside /api/v1 every refusal and error is JSON."""
    if not request.path.startswith(PREFIX):
        return await handler(request)
    try:
        return await handler(request)
    except ActionRefused as refused:
        kind = {400: "invalid", 404: "not_found", 409: "conflict"}.get(refused.status, "refused")
        return json_error(refused.status, kind, refused.reason)
    except web.HTTPException as error:
        if error.content_type == "application/json":
            raise
        kind = {404: "not_found", 405: "method_not_allowed"}.get(error.status, "error")
        return json_error(error.status, kind, error.reason)


def setup_api(app: web.Application, resources: Resources) -> None:
    handlers = ApiHandlers(resources)
    app.middlewares.append(api_errors)
    app.router.add_get(f"{PREFIX}/openapi.json", handlers.openapi)
    for operation in OPERATIONS:
        app.router.add_route(
            operation.method, PREFIX + operation.route(), operation.bound_to(handlers)
        )
