"""Admin pages: login, dashboard, upload, batch progress (with a live stream), reports (the list
and one report in detail), outbox."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

import structlog
from aiohttp import web
from multidict import MultiDictProxy

from contracts.v1 import IngestBatch, ReportStatus, utcnow
from services.gateway import logic
from services.gateway.adapters import (
    Audit,
    Batches,
    NotificationQueries,
    Outbox,
    ReportQueries,
    Sessions,
    Users,
)
from services.gateway.handlers import BatchEvents
from services.gateway.web import SESSION, USER, client_detail, redirect, render, set_cookie
from services.infra.broker import publish
from services.infra.service import Resources
from services.infra.tokens import new_token

log = structlog.get_logger()

SESSION_COOKIE = "rf_session"
LOGIN_CSRF_COOKIE = "rf_login_csrf"
# Paths that do not need an admin session: the portal and webhooks have their own checks.
PUBLIC_PREFIXES = (
    "/login",
    "/static/",
    "/r/",
    "/webhooks/",
    "/healthz",
    "/metrics",
    "/favicon.ico",
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LIVE_REFRESH_SECONDS = 2.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_middleware(sessions: Sessions) -> Any:
    """Admin pages need a session; every state-changing admin request needs its CSRF token."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PUBLIC_PREFIXES):
            return await handler(request)
        token = request.cookies.get(SESSION_COOKIE)
        session = await sessions.get(token, utcnow()) if token else None
        if session is None:
            if request.method in SAFE_METHODS:
                raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")
            raise web.HTTPForbidden(text="Not logged in.")
        request[SESSION] = session
        request[USER] = session["username"]
        if request.method not in SAFE_METHODS:
            given = request.headers.get("X-CSRF-Token")
            if given is None:
                field = (await request.post()).get("csrf_token")
                given = field if isinstance(field, str) else None
            if not logic.tokens_match(session["csrf_token"], given):
                log.warning("admin.csrf_rejected", path=request.path)
                return render(
                    request,
                    "error.html",
                    {
                        "title": "Request refused",
                        "message": "The form expired. Go back, reload the page and try again.",
                    },
                    status=403,
                )
        return await handler(request)

    return middleware


def _text(form: MultiDictProxy[Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


async def start_batch(
    resources: Resources, batches: Batches, *, filename: str, data: bytes, uploaded_by: str
) -> dict[str, Any]:
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
    def __init__(self, resources: Resources, events: BatchEvents) -> None:
        self._resources = resources
        self._settings = resources.settings
        self._events = events
        self.sessions = Sessions(resources.db)
        self._users = Users(resources.db)
        self._batches = Batches(resources.db)
        self._reports = ReportQueries(resources.db)
        self._outbox = Outbox(resources.db)
        self._audit = Audit(resources.db)
        self._notifications = NotificationQueries(resources.db)

    # --- login ---------------------------------------------------------------------------

    def _login_page(
        self, request: web.Request, *, error: str = "", next_path: str = "/", status: int = 200
    ) -> web.Response:
        # Reuse the browser's token: a second tab (or a stray request) must not void the first.
        csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
        response = render(
            request,
            "login.html",
            {"error": error, "next": next_path, "login_csrf": csrf},
            status=status,
        )
        set_cookie(
            response,
            LOGIN_CSRF_COOKIE,
            csrf,
            path="/login",
            secure=self._settings.cookie_secure,
            samesite="Strict",
        )
        return response

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        next_path = logic.safe_next(request.query.get("next"))
        token = request.cookies.get(SESSION_COOKIE)
        if token and await self.sessions.get(token, utcnow()):
            raise web.HTTPSeeOther(next_path)
        return self._login_page(request, next_path=next_path)

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        next_path = logic.safe_next(_text(form, "next"))
        # Login CSRF: double-submit cookie, as there is no session yet.
        if not logic.tokens_match(
            request.cookies.get(LOGIN_CSRF_COOKIE), _text(form, "csrf_token")
        ):
            return self._login_page(
                request,
                error="The form expired; please try again.",
                next_path=next_path,
                status=403,
            )
        username = _text(form, "username").strip()
        password = _text(form, "password")
        now = utcnow()
        # The attempt is counted before the password is checked, so that parallel guesses
        # cannot all be checked while the username still looks unlocked.
        if username and not await self._users.take_attempt(username, now):
            log.warning("admin.login_locked")
            return self._login_page(
                request,
                error="Too many failed attempts. Try again in 15 minutes.",
                next_path=next_path,
                status=429,
            )
        if not username or not await self._users.check_password(username, password):
            log.warning("admin.login_failed")
            return self._login_page(
                request, error="Wrong username or password.", next_path=next_path, status=401
            )
        await self._users.clear_failures(username)
        token = await self.sessions.create(username, now)
        log.info("admin.logged_in")
        response = redirect(next_path)
        set_cookie(
            response,
            SESSION_COOKIE,
            token,
            path="/",
            secure=self._settings.cookie_secure,
            max_age=int(logic.ADMIN_SESSION_TTL.total_seconds()),
        )
        response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await self.sessions.delete(token)
        response = redirect("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    # --- dashboard and upload ------------------------------------------------------------

    async def dashboard(self, request: web.Request) -> web.StreamResponse:
        batches = await self._batches.recent()
        counts = await self._batches.status_counts([b["_id"] for b in batches])
        rows = [
            {"batch": b, "counts": logic.batch_count_summary(b, counts.get(b["_id"], {}))}
            for b in batches
        ]
        return render(request, "dashboard.html", {"rows": rows})

    async def upload_form(self, request: web.Request) -> web.StreamResponse:
        return render(request, "upload.html", {"error": ""})

    async def upload(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        field = form.get("file")
        if not isinstance(field, web.FileField) or not field.filename:
            return render(
                request,
                "upload.html",
                {"error": "Choose a .xlsx or .csv file to upload."},
                status=400,
            )
        filename = logic.clean_filename(field.filename)
        data = await asyncio.to_thread(field.file.read)
        if problem := logic.upload_problem(filename, data):
            return render(request, "upload.html", {"error": problem}, status=400)
        batch = await start_batch(
            self._resources,
            self._batches,
            filename=filename,
            data=data,
            uploaded_by=request[USER],
        )
        raise web.HTTPSeeOther(f"/batches/{batch['_id']}")

    # --- one batch -----------------------------------------------------------------------

    async def batch(self, request: web.Request) -> web.StreamResponse:
        batch_id = request.match_info["batch_id"]
        batch = await self._batches.get(batch_id)
        if batch is None:
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
                "duplicate_rows": duplicates if isinstance(duplicates, list) else [],
            },
        )

    async def batch_counts(self, request: web.Request) -> web.StreamResponse:
        summary = await self._batches.summary(request.match_info["batch_id"])
        if summary is None:
            raise web.HTTPNotFound(text="No such batch.")
        return web.json_response(summary)

    async def batch_events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: a counts snapshot on every status change, and every 2 s anyway
        (another gateway replica may have consumed the event)."""
        batch_id = request.match_info["batch_id"]
        summary = await self._batches.summary(batch_id)
        if summary is None:
            raise web.HTTPNotFound(text="No such batch.")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        with self._events.listen(batch_id) as woken:
            try:
                while not self._events.closing:
                    await response.write(f"event: counts\ndata: {json.dumps(summary)}\n\n".encode())
                    try:
                        await asyncio.wait_for(woken.wait(), timeout=LIVE_REFRESH_SECONDS)
                    except TimeoutError:
                        pass
                    woken.clear()
                    summary = await self._batches.summary(batch_id) or summary
            except ConnectionResetError:
                pass  # the browser went away
        return response

    # --- reports and outbox --------------------------------------------------------------

    async def reports(self, request: web.Request) -> web.StreamResponse:
        batch_id = request.query.get("batch", "").strip() or None
        status = request.query.get("status", "").strip() or None
        if status not in {s.value for s in ReportStatus} | {None}:
            status = None
        try:
            page = max(1, int(request.query.get("page", "1")))
        except ValueError:
            page = 1
        rows, has_next = await self._reports.page(batch_id=batch_id, status=status, page=page)
        filters = {k: v for k, v in (("batch", batch_id), ("status", status)) if v}

        def page_link(number: int) -> str:
            return "/reports?" + urlencode({**filters, "page": number})

        return render(
            request,
            "reports.html",
            {
                "rows": rows,
                "batch_filter": batch_id or "",
                "status_filter": status or "",
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
            f"admin:{request[USER]}", "admin.report_opened", report["_id"], client_detail(request)
        )
        source = logic.report_source(report)
        batch = await self._batches.get(source["batch_id"]) if source["batch_id"] else None
        portal, portal_more = await self._audit.portal_events(report["_id"])
        staff, staff_more = await self._audit.staff_events(report["_id"])
        return render(
            request,
            "report.html",
            {
                "report": report,
                "patient": report.get("patient") or {},
                "source": source,
                "batch_name": batch["filename"] if batch else source["batch_id"],
                "timeline": logic.report_timeline(report.get("history")),
                "notifications": await self._notifications.for_report(report["_id"]),
                "portal_events": logic.audit_rows(portal),
                "portal_more": portal_more,
                "staff_events": logic.audit_rows(staff),
                "staff_more": staff_more,
                "audit_limit": logic.REPORT_AUDIT_LIMIT,
            },
        )

    async def report_pdf(self, request: web.Request) -> web.StreamResponse:
        report = await self._reports.get(request.match_info["report_id"])
        if report is None or not report.get("pdf_file_id"):
            raise web.HTTPNotFound(text="No PDF for this report.")
        stored = await self._resources.files.get(report["pdf_file_id"])
        await self._audit.write(
            f"admin:{request[USER]}", "report.viewed", report["_id"], client_detail(request)
        )
        name = logic.report_download_name(report.get("sample_date"))
        return web.Response(
            body=stored.data,
            headers={
                "Content-Type": "application/pdf",
                "Content-Disposition": f'inline; filename="{name}"',
            },
        )

    async def outbox(self, request: web.Request) -> web.StreamResponse:
        if self._settings.sms_provider != "outbox":
            raise web.HTTPNotFound(text="The development SMS outbox is not in use.")
        messages = [
            {**message, "link": logic.first_link(str(message.get("body", "")))}
            for message in await self._outbox.recent()
        ]
        return render(request, "outbox.html", {"messages": messages})
