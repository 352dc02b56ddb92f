"""The patient portal: the SMS link, a date-of-birth check, then the report PDF.

Everything is keyed by the link token, which is looked up by its SHA-256 only. No patient
data and no token ever reaches the logs (the access log redacts `/r/<token>`). The portal's
own sessions (`portal_sessions`) are written only here; the link's attempts through the
`reports` owner.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from aiohttp import web

from contracts.v1 import utcnow
from services.gateway import portal_logic as rules
from services.gateway.logic import tokens_match
from services.gateway.portal_logic import LinkState
from services.gateway.web import client_detail, pdf_response, redirect, render, set_cookie
from services.infra.audit import PATIENT, Audit
from services.infra.database import Database
from services.infra.documents import AuditOutcome, ReportDocument
from services.infra.service import Resources
from services.infra.tokens import new_token, token_hash

log = structlog.get_logger()

PORTAL_CSRF_COOKIE = "rf_portal_csrf"
PORTAL_SESSION_COOKIE = "rf_portal"


class PortalSessions:
    """A patient's short session after the date-of-birth check, bound to one report."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, report_id: str, now: datetime) -> str:
        token = new_token()
        await self._db.portal_sessions.insert_one(
            {
                "token_hash": token_hash(token),
                "report_id": report_id,
                "created_at": now,
                "expires_at": now + rules.PORTAL_SESSION_TTL,
            }
        )
        return token

    async def valid(self, token: str, report_id: str, now: datetime) -> bool:
        found = await self._db.portal_sessions.find_one(
            {
                "token_hash": token_hash(token),
                "report_id": report_id,
                "expires_at": {"$gt": now},
            }
        )
        return found is not None


class PortalHandlers:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._settings = resources.settings
        self._reports = resources.reports
        self._sessions = PortalSessions(resources.db)
        self._audit = Audit(resources.db)

    def _lab(self) -> dict[str, str]:
        return {"lab_name": self._settings.lab_name, "lab_phone": self._settings.lab_phone}

    def _set_cookie(
        self, response: web.StreamResponse, name: str, value: str, token: str, max_age: int
    ) -> None:
        """A portal cookie: only for this link's pages, never sent from another site."""
        set_cookie(
            response,
            name,
            value,
            path=f"/r/{token}",
            secure=self._settings.cookie_secure,
            max_age=max_age,
            samesite="Strict",
        )

    async def _load(self, token: str) -> tuple[ReportDocument | None, LinkState]:
        report = await self._reports.by_link_token(token)
        return report, rules.link_state(report, utcnow(), self._settings.portal_max_attempts)

    def _closed_page(self, request: web.Request, state: LinkState) -> web.Response:
        pages = {
            LinkState.UNKNOWN: (
                404,
                "This link is not valid",
                "Check that you opened the whole link from the text message.",
            ),
            LinkState.EXPIRED: (
                410,
                "This link has expired",
                "For your privacy, result links work for a limited time. Please contact the lab.",
            ),
            LinkState.LOCKED: (
                403,
                "Too many attempts",
                "This link has been locked after "
                "too many wrong dates of birth. Please contact the lab.",
            ),
            LinkState.REPLACED: (
                410,
                "A newer report replaced this one",
                "The lab updated your report. Use the link in the newest text message from "
                "the lab, or contact the lab.",
            ),
            LinkState.WITHDRAWN: (
                410,
                "This report was withdrawn",
                "The lab withdrew this report. Please contact the lab.",
            ),
        }
        status, title, message = pages[state]
        return render(
            request,
            "portal_message.html",
            {"title": title, "message": message, "state": state.value, **self._lab()},
            status=status,
        )

    def _check_page(
        self, request: web.Request, token: str, *, error: str = "", status: int = 200
    ) -> web.Response:
        csrf = request.cookies.get(PORTAL_CSRF_COOKIE) or new_token()
        response = render(
            request,
            "portal_check.html",
            {"token": token, "csrf_token": csrf, "error": error, **self._lab()},
            status=status,
        )
        self._set_cookie(response, PORTAL_CSRF_COOKIE, csrf, token, max_age=3600)
        return response

    async def check_form(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        _, state = await self._load(token)
        if state is not LinkState.OPEN:
            return self._closed_page(request, state)
        return self._check_page(request, token)

    async def check(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        report, state = await self._load(token)
        if report is None or state is not LinkState.OPEN:
            await self._check_refused(request, report, state.value)
            return self._closed_page(request, state)
        form = await request.post()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not tokens_match(request.cookies.get(PORTAL_CSRF_COOKIE), fields.get("csrf_token")):
            return self._check_page(
                request,
                token,
                error="The page expired. Please enter your date of birth again.",
                status=403,
            )
        entered = rules.parse_date_of_birth(fields)
        if entered is None:
            return self._check_page(
                request, token, error="Please enter a complete date of birth.", status=400
            )
        # Take one of the link's attempts before comparing: parallel guesses must not all be
        # compared while the count still looks low.
        limit = self._settings.portal_max_attempts
        attempts = await self._reports.take_check_attempt(report["_id"], limit)
        if attempts is None:
            await self._check_refused(request, report, LinkState.LOCKED.value)
            return self._closed_page(request, LinkState.LOCKED)
        if not rules.date_of_birth_matches(entered, report["patient"].get("date_of_birth")):
            return await self._wrong_date(request, token, report, attempts)
        await self._reports.clear_failed_checks(report["_id"])
        session = await self._sessions.create(report["_id"], utcnow())
        await self._audit.write(
            PATIENT, "portal.check_passed", report["_id"], client_detail(request)
        )
        log.info("portal.check_passed", report_id=report["_id"])
        response = redirect(f"/r/{token}/report")
        self._set_cookie(
            response,
            PORTAL_SESSION_COOKIE,
            session,
            token,
            max_age=int(rules.PORTAL_SESSION_TTL.total_seconds()),
        )
        return response

    async def _wrong_date(
        self, request: web.Request, token: str, report: ReportDocument, failed: int
    ) -> web.StreamResponse:
        """After the `failed`-th attempt (already counted) proved wrong."""
        limit = self._settings.portal_max_attempts
        detail = client_detail(request)
        if failed >= limit:
            await self._reports.lock_link(report["_id"])
            await self._audit.write(
                PATIENT, "portal.locked", report["_id"], detail, outcome=AuditOutcome.FAILURE
            )
            log.warning("portal.locked", report_id=report["_id"])
            return self._closed_page(request, LinkState.LOCKED)
        await self._audit.write(
            PATIENT, "portal.check_failed", report["_id"], detail, outcome=AuditOutcome.FAILURE
        )
        log.info("portal.check_failed", report_id=report["_id"], failed_attempts=failed)
        left = rules.remaining_attempts(failed, limit)
        noun = "attempt" if left == 1 else "attempts"
        return self._check_page(
            request,
            token,
            error=f"That date of birth does not match our records. {left} {noun} left.",
            status=400,
        )

    async def _check_refused(
        self, request: web.Request, report: ReportDocument | None, why: str
    ) -> None:
        """A date of birth sent to a link that is not open (unknown, expired, locked...)."""
        detail = {"link": why, **client_detail(request)}
        report_id = report["_id"] if report else None
        outcome = AuditOutcome.REFUSED
        await self._audit.write(PATIENT, "portal.check_refused", report_id, detail, outcome=outcome)

    async def _authorised(self, request: web.Request) -> tuple[str, ReportDocument]:
        """The report behind a link whose owner passed the check; else back to the check."""
        token = request.match_info["token"]
        report, state = await self._load(token)
        if report is None or state is not LinkState.OPEN:
            raise web.HTTPSeeOther(f"/r/{token}")  # which says what is wrong with the link
        session = request.cookies.get(PORTAL_SESSION_COOKIE)
        if not session or not await self._sessions.valid(session, report["_id"], utcnow()):
            raise web.HTTPSeeOther(f"/r/{token}")
        return token, report

    async def report_page(self, request: web.Request) -> web.StreamResponse:
        # The page only frames the PDF: its loads are audited where the PDF is served.
        token, report = await self._authorised(request)
        await self._audit.write(PATIENT, "portal.opened", report["_id"], client_detail(request))
        log.info("portal.opened", report_id=report["_id"])
        return render(
            request,
            "portal_report.html",
            {
                "token": token,
                "sample_date": report.get("sample_date", ""),
                "version": report.get("version", 1),
                **self._lab(),
            },
        )

    async def report_pdf(self, request: web.Request) -> web.StreamResponse:
        _, report = await self._authorised(request)
        if not report.get("pdf_file_id"):
            raise web.HTTPNotFound()
        stored = await self._resources.files.get(report["pdf_file_id"])
        download = request.query.get("download") == "1"
        # Every time the PDF leaves: shown in the page's frame or a tab, or saved.
        action = "report.downloaded" if download else "report.viewed"
        await self._audit.write(PATIENT, action, report["_id"], client_detail(request))
        log.info(action, report_id=report["_id"])
        return pdf_response(
            stored.data, report.get("sample_date"), download=download, framed_here=True
        )


def setup_portal(app: web.Application, resources: Resources) -> None:
    handlers = PortalHandlers(resources)
    r = app.router
    r.add_get("/r/{token}", handlers.check_form)
    r.add_post("/r/{token}", handlers.check)
    r.add_get("/r/{token}/report", handlers.report_page)
    r.add_get("/r/{token}/report.pdf", handlers.report_pdf)
